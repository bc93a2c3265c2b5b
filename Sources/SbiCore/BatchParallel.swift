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
        output = FloatBuffer(capacity * tokens)
        outputGradient = FloatBuffer(capacity * tokens)
        valueGradient = FloatBuffer(capacity * tokens)
    }

    /// Runs `body(chunkIndex, start, count, workspace)` for every chunk of a batch of `batch` examples;
    /// each worker takes the next chunk nobody has taken yet.
    private func eachChunk(_ batch: Int, _ body: (Int, Int, Int, TransformerWorkspace) -> Void) {
        let chunks = (batch + chunkSize - 1) / chunkSize
        let next = ChunkCounter()
        DispatchQueue.concurrentPerform(iterations: threads) { w in
            while true {
                let k = next.take()
                if k >= chunks { break }
                let start = k * chunkSize
                body(k, start, min(chunkSize, batch - start), workspaces[w])
            }
        }
    }

    /// Network outputs for `input` into `output`.
    public func forward(_ params: Arena, _ input: TokenBatchView) {
        precondition(input.batch <= capacity && input.tokens == tokens, "batch does not fit")
        eachChunk(input.batch) { _, start, count, ws in
            model.forward(params, input.slice(start, count), ws)
            (output.base + start * tokens).update(from: ws.output.base, count: count * tokens)
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
            eachChunk(input.batch) { k, start, count, ws in
                let view = input.slice(start, count)
                model.forward(params, view, ws)
                let out = output.base + start * tokens, dout = outputGradient.base + start * tokens
                out.update(from: ws.output.base, count: count * tokens)
                lossOut[k] = loss(start, count, out, dout)
                chunkGrads[k].zero()
                model.backward(params, chunkGrads[k], view, ws, dOutput: dout)
                (valueGradient.base + start * tokens).update(from: ws.valueGradient.base, count: count * tokens)
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
