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

/// The verdict of a file: its level and the reasons, in plain language.
public struct Verdict: Codable, Equatable, Sendable {
    /// Each check's threshold: a check flags the file below it.
    public static let checkThreshold = 0.05
    /// The data checks combined (Šidák): caution below 0.05, unreliable below 0.01.
    public static let cautionLevel = 0.05
    public static let unreliableLevel = 0.01

    public var level: VerdictLevel
    public var reasons: [String]
    /// The data checks' smallest p-value, Šidák-adjusted for their number: 1 - (1 - min p)^k.
    public var combinedPValue: Double?

    enum CodingKeys: String, CodingKey {
        case level, reasons
        case combinedPValue = "combined_p_value"
    }

    /// The verdict of `checks` (data checks with p-values) and of `modelCautions` (reasons that do
    /// not depend on the file: a model whose calibration failed or is unknown).
    public init(checks: [Check], modelCautions: [String]) {
        let ps = checks.compactMap(\.pValue)
        var level = VerdictLevel.ok, reasons: [String] = []
        if let smallest = ps.min() {
            let combined = 1 - pow(1 - smallest, Double(ps.count))
            combinedPValue = combined
            if combined < Self.unreliableLevel { level = .unreliable } else if combined < Self.cautionLevel { level = .caution }
            if level > .ok { for c in checks where c.flagged { reasons.append(c.detail) } }
        } else {
            combinedPValue = nil
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
}
