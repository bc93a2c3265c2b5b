// How far to trust one result: the checks run on a file and the verdict they add up to.
import Foundation

/// One check of a file (report.json `diagnostics.checks[]`).
public struct Check: Codable, Equatable, Sendable {
    public var name: String
    public var statistic: Double?
    public var pValue: Double?
    /// The check flags the file when its p-value is below this.
    public var threshold: Double?
    public var flagged: Bool
    /// What it found, in words.
    public var detail: String

    enum CodingKeys: String, CodingKey {
        case name, statistic, threshold, flagged, detail
        case pValue = "p_value"
    }

    public init(name: String, statistic: Double?, pValue: Double?, threshold: Double?, detail: String) {
        self.name = name; self.statistic = statistic; self.pValue = pValue; self.threshold = threshold
        flagged = pValue.map { p in threshold.map { p < $0 } ?? false } ?? false
        self.detail = detail
    }
}

public enum VerdictLevel: String, Codable, Sendable, Comparable {
    case ok, caution, unreliable
    var rank: Int { self == .ok ? 0 : self == .caution ? 1 : 2 }
    public static func < (a: VerdictLevel, b: VerdictLevel) -> Bool { a.rank < b.rank }
}

/// How the data checks' p-values were combined into one.
public enum VerdictCombination: String, Codable, Sendable {
    /// The file's smallest p-value ranked among the smallest p-values of the model's held-out
    /// well-specified cases under the same checks: (1 + #{null < min p} + #{null = min p} / 2) / (n + 1).
    case heldOut = "held_out"
    /// 1 - (1 - min p)^k (exact for independent checks, conservative for correlated ones): models
    /// whose calibration recorded no verdict null, or files not sampled as the pass was.
    case sidak
}

/// The verdict of a file: its level and the reasons, in plain language.
public struct Verdict: Codable, Equatable, Sendable {
    /// Each check's threshold: a check flags the file below it.
    public static let checkThreshold = 0.05
    /// The data checks combined: caution below 0.05, unreliable below 0.01.
    public static let cautionLevel = 0.05
    public static let unreliableLevel = 0.01

    public var level: VerdictLevel
    public var reasons: [String]
    /// The data checks' smallest p-value, adjusted for their number as `combination` says.
    public var combinedPValue: Double?
    public var combination: VerdictCombination?

    enum CodingKeys: String, CodingKey {
        case level, reasons, combination
        case combinedPValue = "combined_p_value"
    }

    /// The verdict of `checks` (data checks with p-values) and of `modelCautions` (reasons that do
    /// not depend on the file: a model whose calibration failed or is unknown). `nullMinima`: the
    /// smallest p-values of held-out well-specified cases under the same checks, when known (`combine`).
    public init(checks: [Check], modelCautions: [String], nullMinima: [Double]? = nil) {
        let ps = checks.compactMap(\.pValue)
        var level = VerdictLevel.ok, reasons: [String] = []
        if let smallest = ps.min() {
            let (combined, how) = Self.combine(smallest: smallest, count: ps.count, nullMinima: nullMinima)
            combinedPValue = combined
            combination = how
            if combined < Self.unreliableLevel { level = .unreliable } else if combined < Self.cautionLevel { level = .caution }
            if level > .ok { for c in checks where c.flagged { reasons.append(c.detail) } }
        } else {
            combinedPValue = nil
            combination = nil
            level = .caution
            reasons.append("no data check could run on this file (no exactly observed data), so nothing tests the model against it")
        }
        if !modelCautions.isEmpty { level = max(level, .caution); reasons += modelCautions }
        if level == .ok {
            let flagged = checks.filter(\.flagged).map(\.name)
            reasons.append(flagged.isEmpty
                ? "no check found the observations unlike the model's simulations (combined p = \(String(format: "%.2g", combinedPValue ?? 1)))"
                : "\(flagged.joined(separator: ", ")) fell below \(Self.checkThreshold), but with \(ps.count) checks that is within chance (combined p = \(String(format: "%.2g", combinedPValue ?? 1)))")
        }
        self.level = level
        self.reasons = reasons
    }

    /// The combined p-value of the smallest of `count` p-values: its rank among `nullMinima`, or Šidák's.
    /// At or beyond the most extreme held-out case the rank can say no more than 1/(n+1), so Šidák's
    /// adjustment, when smaller, carries the tail: data far off every held-out case can still be `unreliable`.
    ///
    /// Held-out cases tied with the file count half (the mid-rank, (1 + #{null < min p} + #{null = min p} / 2)
    /// / (n + 1): the mean of the randomised conformal p-value, half a case above it). Calibrated
    /// predictive p-values bottom out at 1/(k+1) (k comparison cases), for a file far off every case
    /// and for the few held-out cases that are each the most extreme of their own neighbourhood alike.
    /// Counted whole, those ties kept a grossly misspecified file's rank just above 0.05
    /// (lotka-volterra: 11/201). Broken instead by the raw predictive p-value, they let a check whose
    /// null has 100 cases call 3.5% of sird's well-specified files `unreliable` (nominal 1%): a file at
    /// the floor then outranked every tied case, but its own comparison cases, the same for every file
    /// of one design, cannot tell a 1% tail from a 3% one.
    static func combine(smallest: Double, count: Int, nullMinima: [Double]?) -> (Double, VerdictCombination) {
        let sidak = Self.sidak(smallest: smallest, count: count)
        guard let null = nullMinima, let mostExtreme = null.min() else { return (sidak, .sidak) }
        let isTied = { (p: Double) in abs(p - smallest) <= 1e-12 * smallest }
        let tied = null.filter(isTied).count, below = null.filter { $0 < smallest && !isTied($0) }.count
        let rank = (1 + Double(below) + Double(tied) / 2) / Double(null.count + 1)
        return (smallest <= mostExtreme ? min(rank, sidak) : rank, .heldOut)
    }

    /// Šidák's adjustment of the smallest of `count` p-values: 1 - (1 - min p)^count.
    public static func sidak(smallest: Double, count: Int) -> Double { 1 - pow(1 - smallest, Double(count)) }
}
