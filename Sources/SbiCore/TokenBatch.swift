// The inputs of one network evaluation: B examples of up to T tokens each.

/// Pointers to the inputs of `batch` examples, each padded to `tokens` tokens.
/// Per token (B,T): identifier, value, observed flag (1 observed, 0 latent), time, has-time flag.
/// Per example (B): token count (tokens past it are padding), diffusion time.
/// allowed (B,T,T), when present, is the attention mask: allowed[b,i,j] != 0 if token i may attend to j.
public struct TokenBatchView {
    public var batch: Int
    public var tokens: Int
    public var ids: UnsafeMutablePointer<Int32>
    public var values: UnsafeMutablePointer<Float>
    public var observed: UnsafeMutablePointer<Float>
    public var times: UnsafeMutablePointer<Float>
    public var hasTime: UnsafeMutablePointer<Float>
    public var counts: UnsafeMutablePointer<Int32>
    public var allowed: UnsafeMutablePointer<UInt8>?
    public var diffusionTime: UnsafeMutablePointer<Float>

    /// Examples [start, start + count) of this view.
    public func slice(_ start: Int, _ count: Int) -> TokenBatchView {
        let o = start * tokens
        return TokenBatchView(batch: count, tokens: tokens, ids: ids + o, values: values + o,
                              observed: observed + o, times: times + o, hasTime: hasTime + o,
                              counts: counts + start, allowed: allowed.map { $0 + start * tokens * tokens },
                              diffusionTime: diffusionTime + start)
    }
}

/// Owns the input buffers for up to `capacity` examples of `tokens` tokens (allocated once).
public final class TokenBatch: @unchecked Sendable {
    public let capacity: Int
    public let tokens: Int
    /// Number of examples currently filled (<= capacity).
    public var batch: Int
    public let ids: UnsafeMutablePointer<Int32>
    public let values: UnsafeMutablePointer<Float>
    public let observed: UnsafeMutablePointer<Float>
    public let times: UnsafeMutablePointer<Float>
    public let hasTime: UnsafeMutablePointer<Float>
    public let counts: UnsafeMutablePointer<Int32>
    public let allowedStorage: UnsafeMutablePointer<UInt8>
    /// When false the attention is dense (no mask).
    public var usesMask: Bool
    public let diffusionTime: UnsafeMutablePointer<Float>

    public init(capacity: Int, tokens: Int, usesMask: Bool = false) {
        precondition(capacity > 0 && tokens > 0)
        self.capacity = capacity; self.tokens = tokens; self.batch = capacity; self.usesMask = usesMask
        let n = capacity * tokens
        ids = .allocate(capacity: n); ids.initialize(repeating: 0, count: n)
        values = .allocate(capacity: n); values.initialize(repeating: 0, count: n)
        observed = .allocate(capacity: n); observed.initialize(repeating: 0, count: n)
        times = .allocate(capacity: n); times.initialize(repeating: 0, count: n)
        hasTime = .allocate(capacity: n); hasTime.initialize(repeating: 0, count: n)
        counts = .allocate(capacity: capacity); counts.initialize(repeating: Int32(tokens), count: capacity)
        allowedStorage = .allocate(capacity: n * tokens); allowedStorage.initialize(repeating: 1, count: n * tokens)
        diffusionTime = .allocate(capacity: capacity); diffusionTime.initialize(repeating: 0, count: capacity)
    }

    deinit {
        ids.deallocate(); values.deallocate(); observed.deallocate(); times.deallocate()
        hasTime.deallocate(); counts.deallocate(); allowedStorage.deallocate(); diffusionTime.deallocate()
    }

    public var view: TokenBatchView {
        TokenBatchView(batch: batch, tokens: tokens, ids: ids, values: values, observed: observed,
                       times: times, hasTime: hasTime, counts: counts,
                       allowed: usesMask ? allowedStorage : nil, diffusionTime: diffusionTime)
    }
}
