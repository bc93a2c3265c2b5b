// Data parallelism across the batch: each worker runs the network on a contiguous slice of
// examples with its own activations and gradient arena; gradients are summed in a fixed
// order, so results do not depend on thread timing.
import Dispatch

public final class BatchParallel: @unchecked Sendable {
    public let model: Transformer
    public let capacity: Int
    public let tokens: Int
    public let workers: [TransformerWorkspace]
    let workerGrads: [Arena]
    /// Raw outputs (capacity, tokens) gathered from the workers after `forward`.
    public let output: FloatBuffer
    /// Gradient with respect to token values (capacity, tokens) after `backward`.
    public let valueGradient: FloatBuffer

    /// `threads` workers (default: active processor count), each sized for its slice.
    public init(model: Transformer, capacity: Int, tokens: Int, training: Bool, threads: Int? = nil) {
        BLAS.useSingleThread()
        self.model = model; self.capacity = capacity; self.tokens = tokens
        let n = max(1, min(threads ?? BatchParallel.defaultThreads, capacity))
        let per = (capacity + n - 1) / n
        workers = (0..<n).map { _ in TransformerWorkspace(config: model.config, capacity: per, tokens: tokens, training: training) }
        workerGrads = training ? (0..<n).map { _ in Arena(layout: model.layout) } : []
        output = FloatBuffer(capacity * tokens)
        valueGradient = FloatBuffer(capacity * tokens)
    }

    public static var defaultThreads: Int { ProcessInfoCores.active }

    /// The slices [start, start+count) of a batch of `batch` examples.
    func slices(_ batch: Int) -> [(Int, Int)] {
        let per = workers[0].capacity
        return workers.indices.map { w in
            let s = min(w * per, batch)
            return (s, min(per, batch - s))
        }
    }

    public func forward(_ params: Arena, _ input: TokenBatchView) {
        precondition(input.batch <= capacity && input.tokens == tokens)
        let parts = slices(input.batch)
        DispatchQueue.concurrentPerform(iterations: workers.count) { w in
            let (s, n) = parts[w]
            guard n > 0 else { return }
            model.forward(params, input.slice(s, n), workers[w])
            (output.base + s * tokens).update(from: workers[w].output.base, count: n * tokens)
        }
    }

    /// Accumulates (+=) parameter gradients into `grads`; value gradients land in `valueGradient`.
    public func backward(_ params: Arena, _ grads: Arena, _ input: TokenBatchView, dOutput: UnsafePointer<Float>) {
        let parts = slices(input.batch)
        DispatchQueue.concurrentPerform(iterations: workers.count) { w in
            let (s, n) = parts[w]
            workerGrads[w].zero()
            guard n > 0 else { return }
            model.backward(params, workerGrads[w], input.slice(s, n), workers[w], dOutput: dOutput + s * tokens)
            (valueGradient.base + s * tokens).update(from: workers[w].valueGradient.base, count: n * tokens)
        }
        for g in workerGrads { grads.add(g) }
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
