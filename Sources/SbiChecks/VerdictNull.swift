// The verdict's null distribution: each held-out case of the calibration pass checked the way a file
// is, so a file's smallest p-value is compared with the smallest p-values of well-specified cases
// under the same checks. The checks are correlated (they read the same observations), so Šidák's
// 1 - (1 - min p)^k, which treats them as independent, is conservative; this comparison is exact up
// to the held-out sample.
import Foundation

/// One held-out case's data checks: its out-of-distribution p-value (nil when the model had no
/// references) and, per data variable, its raw posterior predictive p-value with its design.
public struct VerdictNullCase: Codable, Equatable, Sendable {
    public var outOfDistribution: Double?
    public var predictive: [String: PredictiveNullCase]
    public init(outOfDistribution: Double?, predictive: [String: PredictiveNullCase]) {
        self.outOfDistribution = outOfDistribution; self.predictive = predictive
    }
    enum CodingKeys: String, CodingKey { case outOfDistribution = "out_of_distribution", predictive }
}

extension ModelCalibration {
    /// The name of the out-of-distribution check, and the prefix of the predictive checks' names.
    public static let outOfDistributionCheck = "out_of_distribution", predictiveCheckPrefix = "posterior_predictive:"

    /// The smallest p-value of every held-out case over the checks `names`, each computed as a
    /// file's is (a predictive p-value calibrated against the other held-out cases nearest the case's
    /// design, leaving the case out); nil when the pass recorded no verdict null or a case lacks a check.
    public func verdictNullMinima(for names: Set<String>) -> [Double]? {
        guard let cases = verdictNull, cases.count > 1, !names.isEmpty else { return nil }
        var minima = [Double](repeating: 1, count: cases.count)
        for name in names {
            guard let pValues = nullPValues(of: name, cases) else { return nil }
            for i in minima.indices { minima[i] = min(minima[i], pValues[i]) }
        }
        return minima
    }

    /// The series a predictive check is about ("posterior_predictive:infected" -> "infected"); nil for other checks.
    static func predictiveVariable(ofCheck name: String) -> String? {
        name.hasPrefix(predictiveCheckPrefix) ? String(name.dropFirst(predictiveCheckPrefix.count)) : nil
    }

    /// Each case's p-value of the check `name` (nil if a case lacks it).
    func nullPValues(of name: String, _ cases: [VerdictNullCase]) -> [Double]? {
        if name == Self.outOfDistributionCheck {
            let ps = cases.compactMap(\.outOfDistribution)
            return ps.count == cases.count ? ps : nil
        }
        guard let variable = Self.predictiveVariable(ofCheck: name) else { return nil }
        let designs = cases.compactMap { $0.predictive[variable] }
        guard designs.count == cases.count else { return nil }
        return designs.indices.map { i in
            var others = designs
            others.remove(at: i)
            let null = Self.nearestHalf(others, to: designs[i])
            return Double(1 + null.filter { $0 <= designs[i].pValue }.count) / Double(null.count + 1)
        }
    }
}
