// Reference posterior samples for the accuracy benchmark: exact samplers where the task has one,
// and for SLCP slice-sampling MCMC on its tractable likelihood.
import SbiCore
import SbiModel
import SbiTasks

public enum ReferencePosterior {
    /// `count` samples of p(theta | x). `thetaTrue` initialises the MCMC chains (as sbibm does).
    public static func sample(task: any SimulationTask, observation x: [Double], thetaTrue: [Double],
                              count: Int, key: RandomKey) -> [[Double]] {
        var rng = RandomStream(key: key)
        if let exact = task.referencePosterior(observation: x, count: count, rng: &rng) { return exact }
        guard let slcp = task as? SLCPTask else { fatalError("no reference sampler for \(task.name)") }
        return slcpMCMC(slcp, x: x, start: thetaTrue, count: count, rng: &rng)
    }

    /// Coordinate-wise slice sampling (stepping out, width 1, shrinkage) in the prior box [-3, 3]^5,
    /// 10 chains from theta_true, 2,000 burn-in sweeps, every 5th sweep kept. The posterior is exactly
    /// symmetric in the signs of theta3 and theta4 (the likelihood sees only their squares), so each
    /// kept sample gets independent random signs for them: all four modes are covered.
    static func slcpMCMC(_ task: SLCPTask, x: [Double], start: [Double], count: Int, rng: inout RandomStream) -> [[Double]] {
        let chains = 10, burn = 2000, thin = 5
        let perChain = (count + chains - 1) / chains
        func logp(_ t: [Double]) -> Double { task.inPriorSupport(t) ? task.logLikelihood(t, x) : -.infinity }
        var out: [[Double]] = []
        for _ in 0..<chains {
            var theta = start
            var lp = logp(theta)
            var kept = 0, sweep = 0
            while kept < perChain {
                for j in 0..<5 {
                    let level = lp + log(rng.uniformOpen())
                    var lo = theta[j] - rng.uniform(), hi = lo + 1
                    var probe = theta
                    probe[j] = lo; while lo > -3, logp(probe) > level { lo -= 1; probe[j] = lo }
                    probe[j] = hi; while hi < 3, logp(probe) > level { hi += 1; probe[j] = hi }
                    lo = max(lo, -3); hi = min(hi, 3)
                    while true {
                        probe[j] = rng.uniform(lo, hi)
                        let l = logp(probe)
                        if l > level { theta = probe; lp = l; break }
                        if probe[j] < theta[j] { lo = probe[j] } else { hi = probe[j] }
                    }
                }
                sweep += 1
                if sweep > burn && sweep % thin == 0 {
                    var s = theta
                    if rng.uniform() < 0.5 { s[2] = -s[2] }
                    if rng.uniform() < 0.5 { s[3] = -s[3] }
                    out.append(s)
                    kept += 1
                }
            }
        }
        return Array(out.prefix(count))
    }
}

import Foundation
