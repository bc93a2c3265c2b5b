// Simulators with irregular time series and a function-valued parameter (METHOD.md,
// "The application models"). Each simulation is a dense row: scalar parameters, then every
// time-indexed variable on its dense grid (observation noise drawn independently per grid point).
import Foundation
import SbiCore
import SbiModel

/// Classic fourth-order Runge-Kutta for dy/dt = f(t, y), `substeps` steps per grid interval,
/// returning the state at every grid time.
func rungeKutta4(_ y0: [Double], grid: [Double], substeps: Int, _ f: (Double, [Double]) -> [Double]) -> [[Double]] {
    var y = y0
    var out = [y0]
    for k in 1..<grid.count {
        let h = (grid[k] - grid[k - 1]) / Double(substeps)
        var t = grid[k - 1]
        for _ in 0..<substeps {
            let k1 = f(t, y)
            let k2 = f(t + h / 2, zip(y, k1).map { $0 + h / 2 * $1 })
            let k3 = f(t + h / 2, zip(y, k2).map { $0 + h / 2 * $1 })
            let k4 = f(t + h, zip(y, k3).map { $0 + h * $1 })
            for i in y.indices { y[i] += h / 6 * (k1[i] + 2 * k2[i] + 2 * k3[i] + k4[i]) }
            t += h
        }
        out.append(y)
    }
    return out
}

@inline(__always) func logistic(_ z: Double) -> Double { 1 / (1 + exp(-z)) }

/// The Simformer paper's Lotka-Volterra setup: alpha, beta, gamma, delta = sigmoid(N(0,1)) * 2 + 1;
/// d prey/dt = alpha prey - beta prey predator, d predator/dt = -gamma predator + delta prey predator,
/// from (prey, predator) = (1, 0.5), RK4 on 150 grid points over [0, 15]; Gaussian noise 0.1.
public struct LotkaVolterraTask: SimulationTask {
    public let name = "lotka_volterra_irregular"
    public static let axis = TimeAxis(lower: 0, upper: 15, grid: 150, maxPoints: 150)
    public var spec: ModelSpec {
        let names = ["alpha", "beta", "gamma", "delta"]
        var vars = names.map { VariableSpec(name: $0, kind: .parameter, size: 1, support: Support(1, 3)) }
        vars.append(VariableSpec(name: "prey", kind: .data, time: Self.axis, noise: ObservationNoise(.additive, std: 0.1)))
        vars.append(VariableSpec(name: "predator", kind: .data, time: Self.axis, noise: ObservationNoise(.additive, std: 0.1)))
        // every parameter -> both series; the series drive each other forward in time
        var edges: [ModelSpec.Edge] = []
        for p in 0..<4 { edges.append(.init(p, 4)); edges.append(.init(p, 5)) }
        edges.append(.init(4, 5)); edges.append(.init(5, 4))
        return ModelSpec(variables: vars, edges: edges)
    }
    public init() {}

    public func sampleJoint(_ rng: inout RandomStream) -> [Double] {
        let theta = (0..<4).map { _ in logistic(rng.normal()) * 2 + 1 }
        let grid = (0..<Self.axis.grid).map { Self.axis.gridTime($0) }
        let states = rungeKutta4([1, 0.5], grid: grid, substeps: 4) { _, y in
            [theta[0] * y[0] - theta[1] * y[0] * y[1], -theta[2] * y[1] + theta[3] * y[0] * y[1]]
        }
        let prey = states.map { $0[0] + 0.1 * rng.normal() }
        let predator = states.map { $0[1] + 0.1 * rng.normal() }
        return theta + prey + predator
    }

    public func inPriorSupport(_ theta: [Double]) -> Bool { theta.allSatisfy { $0 > 1 && $0 < 3 } }
}

/// SIRD with a time-varying contact rate: gamma, delta ~ U(0, 0.5); I0 ~ U(0, 0.2), S0 = 1;
/// beta(t) = sigmoid(GP(0, RBF length 7, amplitude 2.5)) on 100 grid points over [0, 50]
/// (Cholesky with jitter); dS = -beta S I, dI = beta S I - (gamma + delta) I, dR = gamma I, dD = delta I
/// (RK4, beta interpolated linearly); infected, recovered, dead observed with log-normal noise 0.05.
public struct SIRDTask: SimulationTask {
    public let name = "sird"
    public static let axis = TimeAxis(lower: 0, upper: 50, grid: 100, maxPoints: 100, units: "days")
    public var spec: ModelSpec {
        var vars = [VariableSpec(name: "gamma", kind: .parameter, size: 1, units: "1/day", support: Support(0, 0.5)),
                    VariableSpec(name: "delta", kind: .parameter, size: 1, units: "1/day", support: Support(0, 0.5)),
                    VariableSpec(name: "I0", kind: .parameter, size: 1, support: Support(0, 0.2))]
        vars.append(VariableSpec(name: "beta", kind: .parameter, time: Self.axis, units: "1/day", support: Support(0, 1)))
        for n in ["infected", "recovered", "dead"] {
            vars.append(VariableSpec(name: n, kind: .data, time: Self.axis, noise: ObservationNoise(.lognormal, std: 0.05)))
        }
        // scalar parameters and beta(t) -> every series; infected drives recovered and dead forward in time
        var edges: [ModelSpec.Edge] = []
        for p in 0..<4 { for s in 4..<7 { edges.append(.init(p, s)) } }
        edges.append(.init(4, 5)); edges.append(.init(4, 6))
        return ModelSpec(variables: vars, edges: edges)
    }
    public init() {}

    /// Lower Cholesky factor of the GP covariance on the dense grid (jitter grown until it factors).
    static let gpFactor: [[Double]] = {
        let n = axis.grid
        let t = (0..<n).map { axis.gridTime($0) }
        var jitter = 1e-5
        while true {
            var k = [[Double]](repeating: [Double](repeating: 0, count: n), count: n)
            for i in 0..<n { for j in 0..<n { k[i][j] = 2.5 * 2.5 * exp(-0.5 * pow(t[i] - t[j], 2) / 49) } }
            for i in 0..<n { k[i][i] += jitter }
            if let l = cholesky(k) { return l }
            jitter *= 10
        }
    }()

    public func sampleJoint(_ rng: inout RandomStream) -> [Double] {
        let gamma = rng.uniform(0, 0.5), delta = rng.uniform(0, 0.5), i0 = rng.uniform(0, 0.2)
        let n = Self.axis.grid
        let z = (0..<n).map { _ in rng.normal() }
        let l = Self.gpFactor
        let beta = (0..<n).map { i in logistic((0...i).reduce(0.0) { $0 + l[i][$1] * z[$1] }) }
        let grid = (0..<n).map { Self.axis.gridTime($0) }
        let states = rungeKutta4([1, i0, 0, 0], grid: grid, substeps: 4) { t, y in
            let b = Self.axis.interpolate(beta, at: t)
            let infection = b * y[0] * y[1]
            return [-infection, infection - (gamma + delta) * y[1], gamma * y[1], delta * y[1]]
        }
        func observe(_ c: Int) -> [Double] { states.map { exp(log(max($0[c], 0) + 1e-8) + 0.05 * rng.normal()) } }
        let infected = observe(1), recovered = observe(2), dead = observe(3)
        return [gamma, delta, i0] + beta + infected + recovered + dead
    }

    public func inPriorSupport(_ theta: [Double]) -> Bool {
        theta[0] >= 0 && theta[0] <= 0.5 && theta[1] >= 0 && theta[1] <= 0.5 && theta[2] >= 0 && theta[2] <= 0.2
    }
}

/// Cholesky factor L (lower) of a symmetric positive definite matrix, or nil.
func cholesky(_ a: [[Double]]) -> [[Double]]? {
    let n = a.count
    var l = [[Double]](repeating: [Double](repeating: 0, count: n), count: n)
    for i in 0..<n {
        for j in 0...i {
            var s = a[i][j]
            for k in 0..<j { s -= l[i][k] * l[j][k] }
            if i == j {
                guard s > 0 else { return nil }
                l[i][i] = s.squareRoot()
            } else {
                l[i][j] = s / l[j][j]
            }
        }
    }
    return l
}
