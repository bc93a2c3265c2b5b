// Conditioning on constraints instead of exact values (METHOD.md, "Guidance").
// At each step the score s gets + grad log c(x0_hat), with x0_hat the Tweedie estimate of the clean
// value, (x_t + sigma_t^2 s) / mu_t; the gradient is taken at x0_hat, not through the network.

/// A constraint on the clean values of some nodes. Values and gradients are in the model's physical units.
public protocol GuidanceConstraint: Sendable {
    /// The nodes the constraint touches (they must be latent).
    var nodes: [Int] { get }
    /// Adds d/dx log c(x) to grad for one sample. x and grad hold all nodes of the sample.
    func addLogGradient(x: UnsafePointer<Double>, scale: GuidanceScale, grad: UnsafeMutablePointer<Double>)
}

/// How sharp guidance is at one step, per node, in the node's own units. The method's soft step
/// log sigmoid(k (x - a)) has k = 1 / sigma_t^2 in the network's normalised units (z = (x - mean) / std),
/// which is k = 1 / (sigma_t^2 std) in x's units: the same pull on a variable whatever its scale (an
/// energy in nC/cm2 and a fraction of a population alike).
public struct GuidanceScale {
    /// sharpness[i] = 1 / (sigma_t^2 std_i): k of a soft step on node i.
    public let sharpness: UnsafePointer<Double>
    /// noiseVariance[i] = (sigma_t std_i)^2: the variance of the noise on node i at this step.
    public let noiseVariance: UnsafePointer<Double>
    public init(sharpness: UnsafePointer<Double>, noiseVariance: UnsafePointer<Double>) {
        self.sharpness = sharpness; self.noiseVariance = noiseVariance
    }
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

    public func addLogGradient(x: UnsafePointer<Double>, scale: GuidanceScale, grad: UnsafeMutablePointer<Double>) {
        let k = scale.sharpness[node], v = x[node]
        var g = 0.0
        // d/dx log sigmoid(z) = 1 - sigmoid(z)
        if lower.isFinite { g += k * (1 - sigmoid(k * (v - lower))) }
        if upper.isFinite { g -= k * (1 - sigmoid(k * (upper - v))) }
        grad[node] += g
    }
}

/// The noise variance of w . x0_hat at this step: sum_i w_i^2 noiseVariance_i.
@inline(__always)
func combinationVariance(_ weights: [(node: Int, weight: Double)], _ scale: GuidanceScale) -> Double {
    var v = 0.0
    for (i, w) in weights { v += w * w * scale.noiseVariance[i] }
    return v
}

/// The soft step's k for w . x: 1 / sqrt(sum_i w_i^2 / sharpness_i^2), so k (b - w . x) is the same
/// for any positive multiple of the row, and for one node with weight 1 it is that node's sharpness.
@inline(__always)
func combinationSharpness(_ weights: [(node: Int, weight: Double)], _ scale: GuidanceScale) -> Double {
    var v = 0.0
    for (i, w) in weights { v += w * w / (scale.sharpness[i] * scale.sharpness[i]) }
    return 1 / v.squareRoot()
}

/// sum_i w_i x_i over the weighted nodes.
@inline(__always)
func weightedSum(_ weights: [(node: Int, weight: Double)], _ x: UnsafePointer<Double>) -> Double {
    var dot = 0.0
    for (i, w) in weights { dot += w * x[i] }
    return dot
}

/// lower <= sum_i w_i x_i <= upper (either bound may be infinite):
/// log c = log sigmoid(k (w.x - lower)) + log sigmoid(k (upper - w.x)), k = combinationSharpness.
public struct LinearBoundConstraint: GuidanceConstraint {
    public var weights: [(node: Int, weight: Double)]
    public var lower: Double
    public var upper: Double
    public init(weights: [(node: Int, weight: Double)], lower: Double, upper: Double) {
        self.weights = weights; self.lower = lower; self.upper = upper
    }
    public var nodes: [Int] { weights.map(\.node) }

    public func addLogGradient(x: UnsafePointer<Double>, scale: GuidanceScale, grad: UnsafeMutablePointer<Double>) {
        let dot = weightedSum(weights, x), k = combinationSharpness(weights, scale)
        var slope = 0.0
        if lower.isFinite { slope += k * (1 - sigmoid(k * (dot - lower))) }
        if upper.isFinite { slope -= k * (1 - sigmoid(k * (upper - dot))) }
        for (i, w) in weights { grad[i] += slope * w }
    }
}

/// sum_i w_i x_i ~= target +- tolerance: a Gaussian pull with standard deviation tolerance / 2 (so
/// +- tolerance holds about 95% where the rest of the posterior is flat), widened by the step's noise:
/// log c = -(w.x - target)^2 / (2 (tolerance^2 / 4 + combinationVariance)).
public struct SoftLinearEqualityConstraint: GuidanceConstraint {
    public var weights: [(node: Int, weight: Double)]
    public var target: Double
    public var tolerance: Double
    public init(weights: [(node: Int, weight: Double)], target: Double, tolerance: Double) {
        self.weights = weights; self.target = target; self.tolerance = tolerance
    }
    public var nodes: [Int] { weights.map(\.node) }

    public func addLogGradient(x: UnsafePointer<Double>, scale: GuidanceScale, grad: UnsafeMutablePointer<Double>) {
        let dot = weightedSum(weights, x)
        let precision = 1 / (tolerance * tolerance / 4 + combinationVariance(weights, scale))
        for (i, w) in weights { grad[i] -= precision * (dot - target) * w }
    }
}

/// max_i x_i >= bound (or, with `minimum`, min_i x_i <= bound): "at least one value crosses the bound".
/// The extremum is a soft maximum, tau log sum exp(x_i / tau) with tau = sqrt(mean_i noiseVariance_i),
/// so its gradient spreads over the values near the top; log c = log sigmoid(k (softmax - bound)),
/// k = 1 / mean_i (1 / sharpness_i). (max <= bound and min >= bound are one interval per value instead.)
public struct ExtremumConstraint: GuidanceConstraint {
    public var nodes: [Int]
    public var bound: Double
    public var minimum: Bool
    public init(nodes: [Int], bound: Double, minimum: Bool) { self.nodes = nodes; self.bound = bound; self.minimum = minimum }

    public func addLogGradient(x: UnsafePointer<Double>, scale: GuidanceScale, grad: UnsafeMutablePointer<Double>) {
        guard !nodes.isEmpty else { return }
        let s = minimum ? -1.0 : 1.0  // min x = -max(-x)
        let tau2 = nodes.reduce(0) { $0 + scale.noiseVariance[$1] } / Double(nodes.count), tau = tau2.squareRoot()
        let top = nodes.map { s * x[$0] }.max()!
        let weights = nodes.map { exp((s * x[$0] - top) / tau) }
        let total = weights.reduce(0, +)
        let softMax = top + tau * log(total)
        let k = Double(nodes.count) / nodes.reduce(0) { $0 + 1 / scale.sharpness[$1] }
        let slope = k * (1 - sigmoid(k * (softMax - s * bound)))
        for (j, i) in nodes.enumerated() { grad[i] += s * slope * weights[j] / total }
    }
}

import Foundation
