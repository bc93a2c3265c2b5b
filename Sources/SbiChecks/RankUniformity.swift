// Simulation-based calibration: are the ranks of true values among posterior draws uniform?
// The ECDF-difference test with a simultaneous 95% band (Säilynoja, Bürkner & Vehtari 2022,
// "Graphical test for discrete uniformity and its applications in goodness-of-fit evaluation and
// multiple sample comparison", Statistics and Computing 32:32): the empirical CDF of the ranks is
// compared with the uniform CDF at K points; the pointwise binomial band is widened until all K
// points stay inside it together with probability 1 - alpha (found by simulating uniform ranks).
import Foundation
import SbiCore

/// The result of the uniformity test of one set of SBC ranks.
public struct RankUniformity: Codable, Equatable, Sendable {
    /// Ranks tested (one per held-out simulation).
    public var cases: Int
    /// Posterior draws per case: ranks lie in 0...draws.
    public var draws: Int
    /// Probability that uniform ranks stay inside the band everywhere (0.95).
    public var level: Double
    /// Evaluation points: the uniform CDF p_k there (k = 1..K-1).
    public var points: [Double]
    /// ECDF of the ranks at the points, minus the uniform CDF.
    public var difference: [Double]
    /// The simultaneous band of the difference, lower and upper.
    public var bandLower: [Double]
    public var bandUpper: [Double]
    /// Largest |ECDF - uniform CDF| over the points.
    public var maxDeviation: Double
    /// Whether the difference stays inside the band at every point.
    public var passed: Bool

    enum CodingKeys: String, CodingKey {
        case cases, draws, level, points, difference, passed
        case bandLower = "band_lower", bandUpper = "band_upper", maxDeviation = "max_deviation"
    }

    /// Tests `ranks` (each in 0...draws) for uniformity at `level` with a band found from
    /// `simulations` uniform rank sets drawn from `seed` (deterministic for the same inputs).
    public static func test(ranks: [Int], draws: Int, level: Double = 0.95, simulations: Int = 2000,
                            seed: UInt64 = 0x5BC) -> RankUniformity {
        let n = ranks.count, values = draws + 1
        precondition(n > 0 && draws > 0 && ranks.allSatisfy { $0 >= 0 && $0 <= draws })
        let cutoffs = evaluationCutoffs(values: values, cases: n)
        let p = cutoffs.map { Double($0) / Double(values) }
        let tables = p.map { BinomialTail(trials: n, probability: $0) }
        let gamma = adjustedLevel(cases: n, values: values, cutoffs: cutoffs, tables: tables, alpha: 1 - level,
                                  simulations: simulations, seed: seed)
        let counts = cumulativeCounts(ranks, values: values, cutoffs: cutoffs)
        var result = RankUniformity(cases: n, draws: draws, level: level, points: p, difference: [], bandLower: [],
                                    bandUpper: [], maxDeviation: 0, passed: true)
        for k in cutoffs.indices {
            let (lo, hi) = tables[k].band(atLeast: gamma)
            result.difference.append(Double(counts[k]) / Double(n) - p[k])
            result.bandLower.append(Double(lo) / Double(n) - p[k])
            result.bandUpper.append(Double(hi) / Double(n) - p[k])
            if counts[k] < lo || counts[k] > hi { result.passed = false }
        }
        result.maxDeviation = result.difference.map(abs).max() ?? 0
        return result
    }

    /// Whether the stored ECDF difference stays inside the band of another simultaneous `level`
    /// (e.g. one adjusted for testing several parameters), recomputed from the cases and draws.
    public func passes(atLevel other: Double, simulations: Int = 2000, seed: UInt64 = 0x5BC) -> Bool {
        let values = draws + 1
        let cutoffs = Self.evaluationCutoffs(values: values, cases: cases)
        let tables = cutoffs.map { BinomialTail(trials: cases, probability: Double($0) / Double(values)) }
        let gamma = Self.adjustedLevel(cases: cases, values: values, cutoffs: cutoffs, tables: tables, alpha: 1 - other,
                                       simulations: simulations, seed: seed)
        guard cutoffs.count == difference.count else { return false }
        for k in cutoffs.indices {
            let count = Int(((difference[k] + points[k]) * Double(cases)).rounded())
            let (lo, hi) = tables[k].band(atLeast: gamma)
            if count < lo || count > hi { return false }
        }
        return true
    }

    /// Rank cutoffs m_k (ECDF point k counts ranks < m_k): K - 1 points with K = min(values, cases, 50).
    static func evaluationCutoffs(values: Int, cases: Int) -> [Int] {
        let k = max(2, min(values, cases, 50))
        var cutoffs: [Int] = []
        for i in 1..<k {
            let m = Int((Double(i) * Double(values) / Double(k)).rounded())
            if m > 0, m < values, cutoffs.last != m { cutoffs.append(m) }
        }
        return cutoffs
    }

    /// counts[k] = #{ranks < cutoffs[k]}.
    static func cumulativeCounts(_ ranks: [Int], values: Int, cutoffs: [Int]) -> [Int] {
        var histogram = [Int](repeating: 0, count: values)
        for r in ranks { histogram[r] += 1 }
        var counts: [Int] = [], below = 0, next = 0
        for m in cutoffs {
            while next < m { below += histogram[next]; next += 1 }
            counts.append(below)
        }
        return counts
    }

    /// The pointwise level gamma at which the band holds simultaneously with probability 1 - alpha:
    /// the alpha-quantile of min_k (two-sided pointwise tail probability) over uniform rank sets.
    static func adjustedLevel(cases: Int, values: Int, cutoffs: [Int], tables: [BinomialTail], alpha: Double,
                              simulations: Int, seed: UInt64) -> Double {
        var rng = RandomStream(key: RandomKey(seed: seed))
        var minima: [Double] = []
        minima.reserveCapacity(simulations)
        var ranks = [Int](repeating: 0, count: cases)
        for _ in 0..<simulations {
            for i in 0..<cases { ranks[i] = Int(rng.nextUInt64() % UInt64(values)) }
            let counts = cumulativeCounts(ranks, values: values, cutoffs: cutoffs)
            minima.append(zip(tables, counts).map { $0.twoSided($1) }.min() ?? 1)
        }
        minima.sort()
        // the largest gamma with #{min < gamma} <= alpha * simulations
        let allowed = Int((alpha * Double(simulations)).rounded(.down))
        return minima[min(allowed, minima.count - 1)]
    }
}

/// Tail probabilities of Binomial(trials, probability), tabulated.
struct BinomialTail {
    /// cdf[c] = P(X <= c), c = 0...trials
    let cdf: [Double]

    init(trials: Int, probability p: Double) {
        var cdf = [Double](repeating: 0, count: trials + 1), total = 0.0
        var logFactorial = [0.0]   // log(c!), c = 0...trials
        for c in 1...max(trials, 1) { logFactorial.append(logFactorial[c - 1] + log(Double(c))) }
        let logP = log(p), logQ = log1p(-p), logN = logFactorial[trials]
        for c in 0...trials {
            let logPmf = logN - logFactorial[c] - logFactorial[trials - c]
                + Double(c) * logP + Double(trials - c) * logQ
            total += exp(logPmf)
            cdf[c] = min(total, 1)
        }
        self.cdf = cdf
    }

    /// 2 min(P(X <= c), P(X >= c)), at most 1.
    func twoSided(_ c: Int) -> Double {
        let lower = cdf[c], upper = c == 0 ? 1 : 1 - cdf[c - 1]
        return min(1, 2 * min(lower, upper))
    }

    /// The counts whose two-sided tail probability is at least gamma: [lo, hi].
    func band(atLeast gamma: Double) -> (Int, Int) {
        let inside = cdf.indices.filter { twoSided($0) >= gamma }
        return (inside.first ?? 0, inside.last ?? cdf.count - 1)
    }
}
