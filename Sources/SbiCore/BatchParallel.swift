// Data parallelism across the batch. The batch is cut into fixed chunks of examples
// (independent of the thread count); workers take the next free chunk, each with its own
// activations; each chunk's gradient goes to its own arena and the chunks are summed in chunk
// order. A chunk's arithmetic does not depend on which worker runs it, so results are
// bit-identical for any number of threads, and taking chunks on demand keeps the cores balanced.
import Dispatch

public final class BatchParallel: @unchecked Sendable {
    public let model: Transformer
    public let capacity: Int
    public let tokens: Int
    /// Examples per chunk.
    public let chunkSize: Int
    public let threads: Int
    let workspaces: [TransformerWorkspace]
    /// Per worker: a chunk's inputs packed to the longest example of the chunk (see `compact`).
    let staging: [TokenBatch]
    let stagingOutput: [FloatBuffer]
    let chunkGrads: [Arena]
    /// Raw outputs (capacity, tokens) after `forward` or `forwardBackward`.
    public let output: FloatBuffer
    /// d loss / d output (capacity, tokens) written by the loss callback of `forwardBackward`.
    public let outputGradient: FloatBuffer
    /// d loss / d token value (capacity, tokens) after `forwardBackward`.
    public let valueGradient: FloatBuffer

    /// Default chunk: about 512 token rows: big enough for efficient products, small enough that
    /// a batch makes many chunks and the workers finish together.
    public static func defaultChunk(tokens: Int) -> Int { max(1, 512 / tokens) }

    public static var defaultThreads: Int { ProcessInfoCores.active }

    public init(model: Transformer, capacity: Int, tokens: Int, training: Bool,
                threads: Int? = nil, chunkSize: Int? = nil) {
        BLAS.useSingleThread()
        self.model = model; self.capacity = capacity; self.tokens = tokens
        let chunk = min(capacity, chunkSize ?? BatchParallel.defaultChunk(tokens: tokens))
        self.chunkSize = chunk
        let chunks = (capacity + chunk - 1) / chunk
        self.threads = max(1, min(threads ?? BatchParallel.defaultThreads, chunks))
        workspaces = (0..<self.threads).map { _ in
            TransformerWorkspace(config: model.config, capacity: chunk, tokens: tokens, training: training)
        }
        chunkGrads = training ? (0..<chunks).map { _ in Arena(layout: model.layout) } : []
        staging = (0..<self.threads).map { _ in TokenBatch(capacity: chunk, tokens: tokens, usesMask: true) }
        stagingOutput = (0..<self.threads).map { _ in FloatBuffer(chunk * tokens) }
        output = FloatBuffer(capacity * tokens)
        outputGradient = FloatBuffer(capacity * tokens)
        valueGradient = FloatBuffer(capacity * tokens)
    }

    /// Runs `body(chunkIndex, start, count, worker)` for every chunk of a batch of `batch` examples;
    /// each worker takes the next chunk nobody has taken yet.
    private func eachChunk(_ batch: Int, _ body: (Int, Int, Int, Int) -> Void) {
        let chunks = (batch + chunkSize - 1) / chunkSize
        let next = ChunkCounter()
        DispatchQueue.concurrentPerform(iterations: threads) { w in
            while true {
                let k = next.take()
                if k >= chunks { break }
                let start = k * chunkSize
                body(k, start, min(chunkSize, batch - start), w)
            }
        }
    }

    /// The chunk's view with tokens cut to its longest example: examples with fewer tokens than the
    /// batch stride are copied into worker w's staging batch at a tighter stride, so padding costs
    /// nothing. Returns the view and the stride used.
    private func compact(_ input: TokenBatchView, _ start: Int, _ count: Int, _ w: Int) -> (TokenBatchView, Int) {
        var longest = 1
        for e in start..<(start + count) { longest = max(longest, Int(input.counts[e])) }
        let view = input.slice(start, count)
        if longest == tokens { return (view, tokens) }
        let s = staging[w], t = longest
        for e in 0..<count {
            for i in 0..<t {
                let from = e * tokens + i, to = e * t + i
                s.ids[to] = view.ids[from]; s.values[to] = view.values[from]; s.observed[to] = view.observed[from]
                s.times[to] = view.times[from]; s.hasTime[to] = view.hasTime[from]
                if let a = view.allowed {
                    (s.allowedStorage + to * t).update(from: a + from * tokens, count: t)
                }
            }
            s.counts[e] = view.counts[e]; s.diffusionTime[e] = view.diffusionTime[e]
        }
        s.usesMask = view.allowed != nil
        s.batch = count
        var packed = s.view
        packed.tokens = t
        return (packed, t)
    }

    /// Copies rows of stride `from` into stride `to` (count examples; extra tokens zero).
    private func restride(_ src: UnsafePointer<Float>, _ from: Int, _ dst: UnsafeMutablePointer<Float>, _ to: Int, _ count: Int) {
        for e in 0..<count {
            let n = min(from, to)
            (dst + e * to).update(from: src + e * from, count: n)
            if to > n { (dst + e * to + n).update(repeating: 0, count: to - n) }
        }
    }

    /// Network outputs for `input` into `output`.
    public func forward(_ params: Arena, _ input: TokenBatchView) {
        precondition(input.batch <= capacity && input.tokens == tokens, "batch does not fit")
        eachChunk(input.batch) { _, start, count, w in
            let (view, t) = compact(input, start, count, w)
            model.forward(params, view, workspaces[w])
            restride(workspaces[w].output.base, t, output.base + start * tokens, tokens, count)
        }
    }

    /// Forward, loss and backward per chunk. `loss(start, count, output, dOutput)` gets one chunk's
    /// outputs (count, tokens), writes d loss / d output and returns the chunk's loss term.
    /// Accumulates (+=) the parameter gradients into `grads`; returns the summed loss.
    @discardableResult
    public func forwardBackward(_ params: Arena, _ grads: Arena, _ input: TokenBatchView,
                                loss: (Int, Int, UnsafePointer<Float>, UnsafeMutablePointer<Float>) -> Double) -> Double {
        precondition(!chunkGrads.isEmpty, "forwardBackward needs a training runner")
        precondition(input.batch <= capacity && input.tokens == tokens, "batch does not fit")
        let chunks = (input.batch + chunkSize - 1) / chunkSize
        var losses = [Double](repeating: 0, count: chunks)
        losses.withUnsafeMutableBufferPointer { lossOut in
            eachChunk(input.batch) { k, start, count, w in
                let ws = workspaces[w]
                let (view, t) = compact(input, start, count, w)
                model.forward(params, view, ws)
                let out = output.base + start * tokens, dout = outputGradient.base + start * tokens
                restride(ws.output.base, t, out, tokens, count)
                lossOut[k] = loss(start, count, out, dout)
                chunkGrads[k].zero()
                let packedGradient = stagingOutput[w].base
                restride(dout, tokens, packedGradient, t, count)
                model.backward(params, chunkGrads[k], view, ws, dOutput: packedGradient)
                restride(ws.valueGradient.base, t, valueGradient.base + start * tokens, tokens, count)
            }
        }
        for k in 0..<chunks { grads.add(chunkGrads[k]) }
        return losses.reduce(0, +)
    }
}

/// A shared counter handing out chunk indices 0, 1, 2, ... under a mutex.
final class ChunkCounter: @unchecked Sendable {
    private var value = 0
    private var mutex = pthread_mutex_t()
    init() { pthread_mutex_init(&mutex, nil) }
    deinit { pthread_mutex_destroy(&mutex) }
    func take() -> Int {
        pthread_mutex_lock(&mutex)
        defer { value += 1; pthread_mutex_unlock(&mutex) }
        return value
    }
}

/// Number of processors this process may use.
public enum ProcessInfoCores {
    public static var active: Int {
        #if canImport(Glibc)
        return max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        #else
        return 1
        #endif
    }
}

#if canImport(Glibc)
import Glibc
#endif
