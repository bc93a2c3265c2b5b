// Simulation tasks: a prior, a simulator and a dependency graph (TASKS.md, METHOD.md).
import SbiCore
import SbiModel

/// A built-in simulator with its prior. Values are flattened in `spec` node order.
public protocol SimulationTask: Sendable {
    var name: String { get }
    var spec: ModelSpec { get }
    /// One joint draw as a dense row (`spec.denseWidth` values: scalars, then each time-indexed
    /// variable on its dense grid).
    func sampleJoint(_ rng: inout RandomStream) -> [Double]
    /// Exact samples of p(theta | x) where the task has an exact sampler (nil otherwise).
    func referencePosterior(observation x: [Double], count: Int, rng: inout RandomStream) -> [[Double]]?
    /// Whether theta lies in the support of the prior.
    func inPriorSupport(_ theta: [Double]) -> Bool
}

public extension SimulationTask {
    func referencePosterior(observation x: [Double], count: Int, rng: inout RandomStream) -> [[Double]]? { nil }

    /// `count` joint draws, draw i from its own stream key.split(i) (independent of the count).
    func simulate(count: Int, key: RandomKey) -> [[Double]] {
        (0..<count).map { i in
            var rng = RandomStream(key: key.split(UInt64(i)))
            return sampleJoint(&rng)
        }
    }
}

/// Look-up of the built-in tasks by name.
public enum TaskRegistry {
    public static let benchmarkNames = ["gaussian_linear", "gaussian_mixture", "two_moons", "slcp"]
    public static let timeSeriesNames = ["lotka_volterra_irregular", "sird"]
    /// Application models with fixed-size data (summary features).
    public static let featureNames = ["hodgkin_huxley"]
    public static var allNames: [String] { benchmarkNames + timeSeriesNames + featureNames }

    public static func task(named name: String) throws -> any SimulationTask {
        switch name {
        case "gaussian_linear": return GaussianLinearTask()
        case "gaussian_mixture": return GaussianMixtureTask()
        case "two_moons": return TwoMoonsTask()
        case "slcp": return SLCPTask()
        case "lotka_volterra_irregular": return LotkaVolterraTask()
        case "sird": return SIRDTask()
        case "hodgkin_huxley": return HodgkinHuxleyTask()
        default:
            throw SbiError(.usage, "unknown task '\(name)'",
                           hint: "choose one of: \(allNames.joined(separator: ", "))")
        }
    }
}

/// theta, x vectors as the two variables of a benchmark task.
func benchmarkVariables(theta: Int, x: Int, support: Support? = nil) -> [VariableSpec] {
    [VariableSpec(name: "theta", kind: .parameter, size: theta, support: support), VariableSpec(name: "x", kind: .data, size: x)]
}
