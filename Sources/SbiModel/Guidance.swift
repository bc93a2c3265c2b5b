// Conditioning on constraints instead of exact values (METHOD.md, "Guidance").
// At each step the score s gets + grad log c(x0_hat), with x0_hat the Tweedie estimate of the clean
// value, (x_t + sigma_t^2 s) / mu_t; the gradient is taken at x0_hat, not through the network.

/// A constraint on the clean values of some nodes. Values and gradients are in the model's physical units.
public protocol GuidanceConstraint: Sendable {
    /// The nodes the constraint touches (they must be latent).
    var nodes: [Int] { get }
    /// Adds d/dx log c(x) to grad for one sample. x and grad hold all nodes of the sample;
    /// `sharpness[i]` is 1 / (sigma_t * std_i)^2, the sharpness of a soft step in node i's units.
    func addLogGradient(x: UnsafePointer<Double>, sharpness: UnsafePointer<Double>, grad: UnsafeMutablePointer<Double>)
}

@inline(__always)
func sigmoid(_ z: Double) -> Double { z >= 0 ? 1 / (1 + exp(-z)) : exp(z) / (1 + exp(z)) }

/// x[node] in [lower, upper]: log c = log sigmoid(k (x - a)) + log sigmoid(k (b - x)).
/// Either bound may be infinite (a one-sided interval).
public struct IntervalConstraint: GuidanceConstraint {
    public var node: Int
    public var lower: Double
    public var upper: Double
    public init(node: Int, lower: Double, upper: Double) { self.node = node; self.lower = lower; self.upper = upper }
    public var nodes: [Int] { [node] }

    public func addLogGradient(x: UnsafePointer<Double>, sharpness: UnsafePointer<Double>, grad: UnsafeMutablePointer<Double>) {
        let k = sharpness[node], v = x[node]
        var g = 0.0
        // d/dx log sigmoid(z) = 1 - sigmoid(z)
        if lower.isFinite { g += k * (1 - sigmoid(k * (v - lower))) }
        if upper.isFinite { g -= k * (1 - sigmoid(k * (upper - v))) }
        grad[node] += g
    }
}

/// sum_i w_i x_i <= bound: log c = log sigmoid(k (bound - w . x)), with k the sharpness of the first node.
public struct LinearInequalityConstraint: GuidanceConstraint {
    public var weights: [Int: Double]
    public var bound: Double
    public init(weights: [Int: Double], bound: Double) { self.weights = weights; self.bound = bound }
    public var nodes: [Int] { weights.keys.sorted() }

    public func addLogGradient(x: UnsafePointer<Double>, sharpness: UnsafePointer<Double>, grad: UnsafeMutablePointer<Double>) {
        var dot = 0.0, k = Double.infinity
        for (i, w) in weights { dot += w * x[i]; k = min(k, sharpness[i]) }
        let slope = k * (1 - sigmoid(k * (bound - dot)))
        for (i, w) in weights { grad[i] -= slope * w }
    }
}

/// x[node] close to value: log c = -k (x - value)^2 / 2 (a Gaussian pull that sharpens as t -> 0).
public struct SoftEqualityConstraint: GuidanceConstraint {
    public var node: Int
    public var value: Double
    public init(node: Int, value: Double) { self.node = node; self.value = value }
    public var nodes: [Int] { [node] }

    public func addLogGradient(x: UnsafePointer<Double>, sharpness: UnsafePointer<Double>, grad: UnsafeMutablePointer<Double>) {
        grad[node] -= sharpness[node] * (x[node] - value)
    }
}

import Foundation
