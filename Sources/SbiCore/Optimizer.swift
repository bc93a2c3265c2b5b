// Adam with adaptive gradient clipping and the METHOD.md learning-rate schedule.

/// Learning rate: `peak` for the first half of training, then linear decay to `final`.
public struct LearningRateSchedule: Codable, Hashable, Sendable {
    public var peak: Float
    public var final: Float
    public var totalSteps: Int
    public init(peak: Float = 1e-3, final: Float = 1e-6, totalSteps: Int) {
        self.peak = peak; self.final = final; self.totalSteps = totalSteps
    }
    public func rate(at step: Int) -> Float {
        let half = totalSteps / 2
        if step < half { return peak }
        let span = max(totalSteps - half, 1)
        let f = min(Float(step - half) / Float(span), 1)
        return peak + (final - peak) * f
    }
}

public struct AdamConfig: Codable, Hashable, Sendable {
    public var beta1: Float = 0.9
    public var beta2: Float = 0.999
    public var epsilon: Float = 1e-8
    /// Adaptive gradient clipping factor (Brock et al. 2021): a unit's gradient norm is capped
    /// at clip * max(parameter norm, 1e-3). Units are output columns of matrices, whole vectors otherwise.
    public var adaptiveClip: Float = 10
    public init() {}
}

/// Adam state (first and second moments) for one parameter layout.
public final class AdamOptimizer: @unchecked Sendable {
    public let config: AdamConfig
    let m: Arena, v: Arena
    public private(set) var step = 0

    public init(layout: ParameterLayout, config: AdamConfig = AdamConfig()) {
        self.config = config
        m = Arena(layout: layout); v = Arena(layout: layout)
    }

    /// The moments and step count, for checkpoints: (first moments, second moments).
    public var moments: (Arena, Arena) { (m, v) }

    /// Continues from a checkpoint: `step` updates done, moments copied from `first` and `second`.
    public func restore(step: Int, first: Arena, second: Arena) {
        self.step = step
        m.copy(from: first)
        v.copy(from: second)
    }

    /// Clips `grads` in place (adaptive clipping) and applies one Adam update with learning rate `lr`.
    public func update(_ params: Arena, _ grads: Arena, learningRate lr: Float) {
        step += 1
        let b1 = config.beta1, b2 = config.beta2
        let c1 = 1 - Float(Double(b1).power(step)), c2 = 1 - Float(Double(b2).power(step))
        for slot in params.layout.slots where !slot.frozen && slot.count > 0 {
            let p = params.pointer(slot), g = grads.pointer(slot)
            adaptiveClip(p, g, slot)
            let mp = m.pointer(slot), vp = v.pointer(slot)
            for i in 0..<slot.count {
                mp[i] = b1 * mp[i] + (1 - b1) * g[i]
                vp[i] = b2 * vp[i] + (1 - b2) * g[i] * g[i]
                p[i] -= lr * (mp[i] / c1) / ((vp[i] / c2).squareRoot() + config.epsilon)
            }
        }
    }

    /// g (rows, cols) or g (n): unit-wise norms over columns of matrices, whole tensor otherwise.
    private func adaptiveClip(_ p: UnsafeMutablePointer<Float>, _ g: UnsafeMutablePointer<Float>, _ slot: TensorSlot) {
        let clip = config.adaptiveClip
        let (rows, cols) = slot.shape.count == 2 ? (slot.shape[0], slot.shape[1]) : (slot.count, 1)
        for col in 0..<cols {
            var pn: Float = 0, gn: Float = 0
            for r in 0..<rows { let i = r * cols + col; pn += p[i] * p[i]; gn += g[i] * g[i] }
            let maxNorm = clip * max(pn.squareRoot(), 1e-3)
            let norm = gn.squareRoot()
            if norm > maxNorm {
                let s = maxNorm / max(norm, 1e-6)
                for r in 0..<rows { g[r * cols + col] *= s }
            }
        }
    }
}

extension Double {
    func power(_ n: Int) -> Double {
        var r = 1.0, b = self, e = n
        while e > 0 { if e & 1 == 1 { r *= b }; b *= b; e >>= 1 }
        return r
    }
}
