// calibration.json: how well a model's posteriors are calibrated, measured on held-out simulations
// at training time (or by `sbiwatch calibrate`), and the null distributions that make each file's
// posterior predictive p-values calibrated.
import Foundation

/// The calibration figures of one scalar (a parameter, a vector element, or a function at a time).
public struct ParameterCalibration: Codable, Equatable, Sendable {
    /// "gamma", "theta[3]", "beta(t=12.5)"
    public var name: String
    public var variable: String
    public var time: Double?
    /// Share of cases whose truth lies in the central 50/80/90/95% interval, keyed "50", "80", "90", "95".
    public var coverage: [String: Double]
    /// The binomial standard error of each coverage at its nominal level, sqrt(c (1 - c) / cases).
    public var coverageStandardError: [String: Double]
    public var sbc: RankUniformity
    /// Mean and sd over cases of (posterior mean - truth) / posterior sd.
    public var meanZScore: Double
    public var sdZScore: Double
    /// Mean over cases of 1 - posterior variance / prior variance.
    public var contraction: Double
    /// The prior's standard deviation (over the held-out truths).
    public var priorSD: Double

    /// The SBC test passed.
    public var passed: Bool { sbc.passed }

    enum CodingKeys: String, CodingKey {
        case name, variable, time, coverage, sbc, contraction
        case coverageStandardError = "coverage_standard_error", meanZScore = "mean_z_score", sdZScore = "sd_z_score"
        case priorSD = "prior_sd"
    }
}

public struct ModelCalibration: Codable, Equatable, Sendable {
    public static let levels = [50, 80, 90, 95]
    public var format = "sbiwatch-calibration-1"
    /// "measured", or "skipped" (with `note` saying why).
    public var status: String
    public var note: String?
    /// Held-out simulations, posterior draws per case, predictive replicates per case.
    public var cases: Int
    public var draws: Int
    public var replicates: Int
    /// Where the held-out cases came from.
    public var source: String
    /// How each case was observed, in words.
    public var design: String
    public var seed: UInt64
    public var sampler: String
    public var samplerSteps: Int
    public var seconds: Double
    public var parameters: [ParameterCalibration]
    /// Data variable -> sorted raw posterior predictive p-values of the held-out cases.
    public var predictiveNull: [String: [Double]]
    /// Data variable -> each held-out case's raw p-value with its design (absent from older
    /// archives, whose files are compared with the whole null).
    public var predictiveNullCases: [String: [PredictiveNullCase]]?
    /// Each held-out case's data checks, for the verdict's null (absent from archives calibrated
    /// before it was recorded, whose verdicts combine the checks with Šidák's adjustment).
    public var verdictNull: [VerdictNullCase]?
    /// The noise-level sampler's last level before 0 (absent for the t-grid samplers, and from
    /// archives calibrated before it could be changed, which used 0.002).
    public var samplerSigmaLow: Double?
    /// Where the DPM-Solver++ samplers' rho-spaced levels started (`SamplerSettings.sigmaHigh`), when set.
    public var samplerSigmaHigh: Double?

    enum CodingKeys: String, CodingKey {
        case format, status, note, cases, draws, replicates, source, design, seed, sampler, seconds, parameters
        case samplerSteps = "sampler_steps", predictiveNull = "predictive_null", predictiveNullCases = "predictive_null_cases"
        case verdictNull = "verdict_null", samplerSigmaLow = "sampler_sigma_low", samplerSigmaHigh = "sampler_sigma_high"
    }

    public var measured: Bool { status == "measured" }

    /// The record of a skipped pass.
    public static func skipped(_ note: String) -> ModelCalibration {
        ModelCalibration(status: "skipped", note: note, cases: 0, draws: 0, replicates: 0, source: "", design: "", seed: 0,
                         sampler: "", samplerSteps: 0, seconds: 0, parameters: [], predictiveNull: [:],
                         predictiveNullCases: nil, verdictNull: nil)
    }

    /// The per-scalar SBC level that makes the tests of all P scalars hold together at 97.5%
    /// (Šidák: 0.975^(1/P)); with the coverage tests at 2.5%, a calibrated model fails with
    /// probability at most 5%, not 1 - 0.95^P.
    public var familyLevel: Double { pow(0.975, 1 / Double(max(parameters.count, 1))) }

    /// The two-sided binomial level of each coverage test: 2.5% over every scalar and level (Bonferroni).
    public var coverageLevel: Double { 0.025 / Double(max(parameters.count * Self.levels.count, 1)) }

    /// Scalars whose calibration fails at the family level (the ones reports caution about): SBC
    /// ranks outside their band, or an interval's coverage unlike its nominal level.
    public func failed() -> [ParameterCalibration] {
        parameters.filter { e in
            (!e.passed && !e.sbc.passes(atLevel: familyLevel)) || worstCoverage(e).map { $0.p < coverageLevel } == true
        }
    }

    /// The coverage of `e` least like its nominal level: (level, observed, two-sided binomial p).
    public func worstCoverage(_ e: ParameterCalibration) -> (level: Int, coverage: Double, p: Double)? {
        guard cases > 0 else { return nil }
        return Self.levels.compactMap { level -> (Int, Double, Double)? in
            guard let c = e.coverage["\(level)"] else { return nil }
            let hits = Int((c * Double(cases)).rounded())
            return (level, c, BinomialTail(trials: cases, probability: Double(level) / 100).twoSided(hits))
        }.min { $0.2 < $1.2 }
    }

    /// The largest |coverage - nominal| over every scalar and level (the figure samplers are compared by).
    public var worstCoverageDeviation: (name: String, level: Int, deviation: Double)? {
        parameters.flatMap { e in
            Self.levels.compactMap { level in e.coverage["\(level)"].map { (e.name, level, abs($0 - Double(level) / 100)) } }
        }.max { $0.2 < $1.2 }
    }

    /// Why a scalar failed, in words.
    public func failure(_ e: ParameterCalibration) -> String {
        if let w = worstCoverage(e), w.p < coverageLevel {
            return "\(e.name): \(w.level)% intervals covered \(Int((w.coverage * 100).rounded()))% of \(cases) held-out truths"
        }
        return "\(e.name): SBC ranks outside their band"
    }

    /// The calibrated p-value of a raw posterior predictive p-value of `variable` observed with
    /// `largestGap` and `trailingGap`: the share of held-out cases at most as extreme,
    /// (1 + #{null <= raw}) / (n + 1), among the half of the held-out cases (ties included) whose
    /// design is nearest the file's (the raw p-value's null depends on the design); nil without a null.
    public func calibratedPredictivePValue(_ raw: Double, variable: String, largestGap: Double, trailingGap: Double = 0) -> Double? {
        let design = PredictiveNullCase(pValue: raw, largestGap: largestGap, trailingGap: trailingGap)
        let null = predictiveNullCases?[variable].map { Self.nearestHalf($0, to: design) } ?? predictiveNull[variable]
        guard let null, !null.isEmpty else { return nil }
        let atMost = null.filter { $0 <= raw }.count
        return Double(1 + atMost) / Double(null.count + 1)
    }

    /// The p-values of the ceil(n/2) cases whose design is nearest `design`'s, and of any tied with
    /// the last of them. Designs are compared on largest gap plus trailing gap (|d largest| + |d trailing|);
    /// archives calibrated before trailing gaps were recorded are compared on the largest gap alone.
    public static func nearestHalf(_ cases: [PredictiveNullCase], to design: PredictiveNullCase) -> [Double] {
        guard !cases.isEmpty else { return [] }
        let withTrailing = cases.allSatisfy { $0.trailingGap != nil }
        let distances = cases.map { c in
            abs(c.largestGap - design.largestGap) + (withTrailing ? abs((c.trailingGap ?? 0) - (design.trailingGap ?? 0)) : 0)
        }
        let cut = distances.sorted()[(cases.count + 1) / 2 - 1]
        return zip(cases, distances).filter { $0.1 <= cut }.map(\.0.pValue)
    }

    /// The calibration of a parameter (by variable, and for functions the nearest calibrated time).
    public func entries(forVariable name: String) -> [ParameterCalibration] { parameters.filter { $0.variable == name } }

    /// How non-finite numbers (a z-score of a degenerate case) are written and read.
    public static let nonFinite = (positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")

    public func encoded() throws -> Data {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: Self.nonFinite.positiveInfinity,
                                                                 negativeInfinity: Self.nonFinite.negativeInfinity, nan: Self.nonFinite.nan)
        var data = try e.encode(self)
        data.append(0x0a)
        return data
    }
}

/// One held-out case of the predictive null: its raw p-value and its design, the longest unobserved
/// share of the series' domain and the unobserved share after its last observation (a series cut
/// short and one with an interior gap of the same length have different nulls).
public struct PredictiveNullCase: Codable, Equatable, Sendable {
    public var pValue: Double
    public var largestGap: Double
    /// nil in archives calibrated before it was recorded
    public var trailingGap: Double?
    public init(pValue: Double, largestGap: Double, trailingGap: Double? = 0) {
        self.pValue = pValue; self.largestGap = largestGap; self.trailingGap = trailingGap
    }
    enum CodingKeys: String, CodingKey { case pValue = "p_value", largestGap = "largest_gap", trailingGap = "trailing_gap" }
}
