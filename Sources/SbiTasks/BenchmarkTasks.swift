// The sbibm benchmark tasks, exactly as TASKS.md defines them.
import Foundation
import SbiCore
import SbiModel

/// theta in R^2, x in R^2: all theta -> all x, and x_0 -> x_1 (the reference DAG of two_moons and gaussian_mixture).
func twoByTwoSpec(support: Support) -> ModelSpec {
    var s = ModelSpec(variables: benchmarkVariables(theta: 2, x: 2, support: support), edges: [])
    s.edges = s.fullyConnected(from: "theta", to: "x") + [.init(2, 3)]
    return s
}

/// theta ~ N(0, 0.1 I_10); x = theta + N(0, 0.1 I_10). Posterior N(x/2, 0.05 I).
public struct GaussianLinearTask: SimulationTask {
    public let name = "gaussian_linear"
    public let dim = 10
    public static let priorVariance = 0.1
    public static let noiseVariance = 0.1
    public var spec: ModelSpec {
        // theta_i -> x_i
        ModelSpec(variables: benchmarkVariables(theta: dim, x: dim), edges: (0..<dim).map { .init($0, dim + $0) })
    }
    public init() {}

    public func sampleJoint(_ rng: inout RandomStream) -> [Double] {
        let theta = (0..<dim).map { _ in rng.normal() * Self.priorVariance.squareRoot() }
        let x = theta.map { $0 + rng.normal() * Self.noiseVariance.squareRoot() }
        return theta + x
    }

    public func referencePosterior(observation x: [Double], count: Int, rng: inout RandomStream) -> [[Double]]? {
        let v = 1 / (1 / Self.priorVariance + 1 / Self.noiseVariance)
        return (0..<count).map { _ in x.map { xi in v * xi / Self.noiseVariance + rng.normal() * v.squareRoot() } }
    }

    public func inPriorSupport(_ theta: [Double]) -> Bool { true }
}

/// theta ~ U([-10, 10]^2); x = theta + N(0, s^2 I) with s = 1 or 0.1 (probability 1/2 each, shared by both coordinates).
public struct GaussianMixtureTask: SimulationTask {
    public let name = "gaussian_mixture"
    public var spec: ModelSpec { twoByTwoSpec(support: Support(-10, 10)) }
    public init() {}

    public func sampleJoint(_ rng: inout RandomStream) -> [Double] {
        let theta = [rng.uniform(-10, 10), rng.uniform(-10, 10)]
        let s = rng.uniform() < 0.5 ? 1.0 : 0.1
        return theta + theta.map { $0 + s * rng.normal() }
    }

    public func referencePosterior(observation x: [Double], count: Int, rng: inout RandomStream) -> [[Double]]? {
        var out: [[Double]] = []
        while out.count < count {
            let s = rng.uniform() < 0.5 ? 1.0 : 0.1
            let theta = x.map { $0 + s * rng.normal() }
            if inPriorSupport(theta) { out.append(theta) }
        }
        return out
    }

    public func inPriorSupport(_ theta: [Double]) -> Bool { theta.allSatisfy { $0 >= -10 && $0 <= 10 } }
}

/// theta ~ U([-1, 1]^2); a ~ U(-pi/2, pi/2), r ~ N(0.1, 0.01^2);
/// x = (r cos a + 0.25 - |theta1 + theta2| / sqrt 2,  r sin a + (theta2 - theta1) / sqrt 2).
public struct TwoMoonsTask: SimulationTask {
    public let name = "two_moons"
    public var spec: ModelSpec { twoByTwoSpec(support: Support(-1, 1)) }
    public init() {}

    func moon(_ rng: inout RandomStream) -> (Double, Double) {
        let a = rng.uniform(-Double.pi / 2, Double.pi / 2)
        let r = 0.1 + 0.01 * rng.normal()
        return (r * cos(a) + 0.25, r * sin(a))
    }

    public func sampleJoint(_ rng: inout RandomStream) -> [Double] {
        let theta = [rng.uniform(-1, 1), rng.uniform(-1, 1)]
        let (p0, p1) = moon(&rng)
        let z0 = (theta[0] + theta[1]) / 2.0.squareRoot(), z1 = (theta[1] - theta[0]) / 2.0.squareRoot()
        return theta + [p0 - abs(z0), p1 + z1]
    }

    /// Exact: q = (p1 - x1, x2 - p2) for a fresh moon draw p, flip the sign of q1 with probability 1/2,
    /// rotate by pi/4; reject outside the prior.
    public func referencePosterior(observation x: [Double], count: Int, rng: inout RandomStream) -> [[Double]]? {
        var out: [[Double]] = []
        let c = cos(Double.pi / 4), s = sin(Double.pi / 4)
        while out.count < count {
            let (p0, p1) = moon(&rng)
            var q0 = p0 - x[0]
            let q1 = x[1] - p1
            if rng.uniform() < 0.5 { q0 = -q0 }
            let theta = [c * q0 - s * q1, s * q0 + c * q1]
            if inPriorSupport(theta) { out.append(theta) }
        }
        return out
    }

    public func inPriorSupport(_ theta: [Double]) -> Bool { theta.allSatisfy { $0 >= -1 && $0 <= 1 } }
}

/// theta ~ U([-3, 3]^5); 4 iid draws x_j ~ N((theta1, theta2), Sigma) with s1 = theta3^2, s2 = theta4^2,
/// rho = tanh(theta5), Sigma = [[s1^2, rho s1 s2], [rho s1 s2, s2^2]] + 1e-6 I; x interleaved (x_1[0], x_1[1], ...).
public struct SLCPTask: SimulationTask {
    public let name = "slcp"
    public var spec: ModelSpec {
        // all theta -> all x; within each draw x_j[0] -> x_j[1]
        var s = ModelSpec(variables: benchmarkVariables(theta: 5, x: 8, support: Support(-3, 3)), edges: [])
        s.edges = s.fullyConnected(from: "theta", to: "x") + (0..<4).map { .init(5 + 2 * $0, 6 + 2 * $0) }
        return s
    }
    public init() {}

    /// Cholesky factor of Sigma: (l00, l10, l11).
    func choleskyOfCovariance(_ theta: [Double]) -> (Double, Double, Double) {
        let s1 = theta[2] * theta[2], s2 = theta[3] * theta[3], rho = tanh(theta[4])
        let a = s1 * s1 + 1e-6, b = rho * s1 * s2, c = s2 * s2 + 1e-6
        let l00 = a.squareRoot(), l10 = b / l00
        return (l00, l10, max(c - l10 * l10, 1e-300).squareRoot())
    }

    public func sampleJoint(_ rng: inout RandomStream) -> [Double] {
        let theta = (0..<5).map { _ in rng.uniform(-3, 3) }
        let (l00, l10, l11) = choleskyOfCovariance(theta)
        var x: [Double] = []
        for _ in 0..<4 {
            let e0 = rng.normal(), e1 = rng.normal()
            x.append(theta[0] + l00 * e0)
            x.append(theta[1] + l10 * e0 + l11 * e1)
        }
        return theta + x
    }

    /// log p(x | theta) of the 4 bivariate Gaussian draws.
    public func logLikelihood(_ theta: [Double], _ x: [Double]) -> Double {
        let (l00, l10, l11) = choleskyOfCovariance(theta)
        var lp = 0.0
        for j in 0..<4 {
            let d0 = x[2 * j] - theta[0], d1 = x[2 * j + 1] - theta[1]
            let z0 = d0 / l00, z1 = (d1 - l10 * z0) / l11
            lp += -0.5 * (z0 * z0 + z1 * z1) - log(l00) - log(l11) - log(2 * Double.pi)
        }
        return lp
    }

    public func inPriorSupport(_ theta: [Double]) -> Bool { theta.allSatisfy { $0 >= -3 && $0 <= 3 } }
}
