// The Hodgkin-Huxley task of the Simformer paper (its reference code's hhtask): a stochastic HH
// neuron under a step current (integrated by exponential Euler, see `trace`), 7 biophysical parameters with uniform priors, and 7 summary
// features of the voltage trace plus the energy token, the integrated sodium charge.
import Foundation
import SbiCore
import SbiModel

public struct HodgkinHuxleyTask: SimulationTask {
    public let name = "hodgkin_huxley"

    /// (name, lower, upper, units) of the 7 parameters, in node order.
    public static let parameters: [(String, Double, Double, String)] = [
        ("Cm", 1, 2, "uF/cm2"), ("gNa", 60, 120, "mS/cm2"), ("gK", 10, 30, "mS/cm2"), ("gL", 0.1, 0.5, "mS/cm2"),
        ("ENa", 40, 70, "mV"), ("EK", -100, -60, "mV"), ("EL", -90, -60, "mV"),
    ]
    /// (name, units) of the 8 data values, in node order.
    public static let features: [(String, String?)] = [
        ("spikes", nil), ("rest_mean", "mV"), ("rest_sd", "mV"), ("stim_mean", "mV"),
        ("stim_var", "mV2"), ("stim_skew", nil), ("stim_kurtosis", nil), ("energy", "nC/cm2"),
    ]
    /// 5,000 time points over 200 ms (dt = 200/4999 ms); the step current of 4 uA/cm2 is on for
    /// 50 <= t < 150 ms; voltage noise sd 0.05 sqrt(dt) per step.
    public static let points = 5000, duration = 200.0, stimulusOn = 50.0, stimulusOff = 150.0
    public static let current = 4.0, noise = 0.05

    public var spec: ModelSpec {
        var s = ModelSpec(variables: Self.parameters.map { VariableSpec(name: $0.0, kind: .parameter, size: 1, units: $0.3, support: Support($0.1, $0.2)) }
                          + Self.features.map { VariableSpec(name: $0.0, kind: .data, size: 1, units: $0.1) }, edges: [])
        // every parameter can move every feature
        s.edges = (0..<7).flatMap { p in (7..<15).map { ModelSpec.Edge(p, $0) } }
        return s
    }
    public init() {}

    public func inPriorSupport(_ theta: [Double]) -> Bool {
        zip(theta, Self.parameters).allSatisfy { $0.0 >= $0.1.1 && $0.0 <= $0.1.2 }
    }

    public func sampleJoint(_ rng: inout RandomStream) -> [Double] {
        let theta = Self.parameters.map { rng.uniform($0.1, $0.2) }
        return theta + simulate(theta, &rng)
    }

    /// The 8 features of one stochastic run with parameters theta (7).
    public func simulate(_ theta: [Double], _ rng: inout RandomStream) -> [Double] {
        let (voltage, charge) = Self.trace(theta, &rng)
        return Self.summaries(voltage) + [-charge]
    }
}

extension HodgkinHuxleyTask {
    /// x / (e^x - 1), 1 at x = 0.
    @inline(__always)
    static func efun(_ x: Double) -> Double { abs(x) < 1e-4 ? 1 - x / 2 : x / expm1(x) }

    /// (alpha, beta) of the gates m, h, n at membrane potential v (mV), with u = v + 65.
    @inline(__always)
    static func rates(_ v: Double) -> (am: Double, bm: Double, ah: Double, bh: Double, an: Double, bn: Double) {
        let u = v + 65
        return (0.32 * efun(-(u - 13) / 4) / 0.25, 0.28 * efun((u - 40) / 5) / 0.2,
                0.128 * exp(-(u - 17) / 18), 4 / (1 + exp(-(u - 40) / 5)),
                0.032 * efun(-(u - 15) / 5) / 0.2, 0.5 * exp(-(u - 10) / 40))
    }

    /// Exponential Euler from rest (V = -65 mV, gates at their steady states): over each step the
    /// gates relax exactly towards their steady states at the step's rates, and V exactly towards
    /// the conductance-weighted reversal potential (its equation is linear in V once the gates are
    /// fixed), then the voltage noise is added. Explicit Euler, the reference's scheme, overshoots
    /// past E_Na at the prior's corner of large g_Na and small C_m (dt G / C_m > 2 on the upstroke).
    /// Returns the voltage trace (points; non-finite values set to -65 and all clipped to [-100, 100]
    /// mV) and the sodium charge integral of g_Na m^3 h (V - E_Na) dt (nC/cm2; negative).
    static func trace(_ theta: [Double], _ rng: inout RandomStream) -> ([Double], Double) {
        let (cm, gNa, gK, gL, eNa, eK, eL) = (theta[0], theta[1], theta[2], theta[3], theta[4], theta[5], theta[6])
        let dt = duration / Double(points - 1), noiseStep = noise * dt.squareRoot()
        var v = -65.0
        let r0 = rates(v)
        var m = r0.am / (r0.am + r0.bm), h = r0.ah / (r0.ah + r0.bh), n = r0.an / (r0.an + r0.bn)
        var charge = 0.0
        var out = [Double](repeating: 0, count: points)
        out[0] = v
        @inline(__always) func relax(_ x: Double, _ a: Double, _ b: Double) -> Double {
            let inf = a / (a + b)
            return inf + (x - inf) * exp(-(a + b) * dt)
        }
        for k in 1..<points {
            let t = Double(k - 1) * dt
            let input = t >= stimulusOn && t < stimulusOff ? current : 0
            let r = rates(v)
            let na = gNa * m * m * m * h, kk = gK * n * n * n * n
            charge += na * (v - eNa) * dt
            let g = na + kk + gL
            let reversal = (na * eNa + kk * eK + gL * eL + input) / g
            v = reversal + (v - reversal) * exp(-g * dt / cm) + noiseStep * rng.normal()
            m = relax(m, r.am, r.bm); h = relax(h, r.ah, r.bh); n = relax(n, r.an, r.bn)
            if !v.isFinite { v = -65 }
            v = min(max(v, -100), 100)
            out[k] = v
        }
        return (out, charge)
    }

    /// The 7 voltage features: spike count, mean and sd before the stimulus, mean, variance,
    /// skewness and kurtosis during it. A spike: a run of steps where 2 or more of the 20 samples
    /// around rise by at least 5 mV per step; counted when the run ends (as the reference counts them).
    static func summaries(_ v: [Double]) -> [Double] {
        let dt = duration / Double(points - 1)
        var rising = [Int](repeating: 0, count: v.count)
        for i in 1..<v.count where v[i] - v[i - 1] >= 5 { rising[i] = 1 }
        var spikes = 0, previous = 0, window = rising[0..<min(9, v.count)].reduce(0, +)
        for i in 0..<v.count {
            // window = sum of rising[i-10 ... i+9]
            if i + 9 < v.count { window += rising[i + 9] }
            if i - 11 >= 0 { window -= rising[i - 11] }
            let inSpike = window > 1 ? 1 : 0
            if inSpike < previous { spikes += 1 }
            previous = inSpike
        }
        let times = v.indices.map { Double($0) * dt }
        let rest = v.indices.filter { times[$0] < stimulusOn }.map { v[$0] }
        let stim = v.indices.filter { times[$0] > stimulusOn && times[$0] < stimulusOff }.map { v[$0] }
        let (restMean, restSd) = meanAndSd(rest)
        let (m, sd) = meanAndSd(stim)
        let central = { (p: Double) in stim.reduce(0) { $0 + pow($1 - m, p) } / Double(stim.count) }
        return [Double(spikes), restMean, restSd, m, central(2), central(3) / pow(sd, 3), central(4) / pow(sd, 4)]
    }

    /// Mean and population sd.
    static func meanAndSd(_ x: [Double]) -> (Double, Double) {
        let m = x.reduce(0, +) / Double(x.count)
        return (m, (x.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(x.count)).squareRoot())
    }
}
