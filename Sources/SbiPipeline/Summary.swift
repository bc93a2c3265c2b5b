// Posterior summaries: moments and quantiles per scalar, and quantile bands along query grids.
import Foundation
import SbiModel
import SbiCore

/// Mean, sd and the 5/25/50/75/95% quantiles of one scalar's samples.
public struct ScalarSummary: Codable, Equatable, Sendable {
    public var mean: Double
    public var sd: Double
    public var q05: Double, q25: Double, q50: Double, q75: Double, q95: Double
    /// Fraction of samples outside the prior's support (absent when the support is unbounded).
    public var outsideSupport: Double?
    public var units: String?
    /// 1 - posterior variance / prior variance (prior from the model's reference simulations).
    public var contraction: Double?
    /// The prior's range [lower, upper], when bounded.
    public var priorRange: [Double]?
    /// Set when the model's calibration failed for this parameter: why to be careful with it.
    public var calibrationCaution: String?

    enum CodingKeys: String, CodingKey {
        case mean, sd, q05, q25, q50, q75, q95, units, contraction
        case outsideSupport = "outside_support", priorRange = "prior_range", calibrationCaution = "calibration_caution"
    }

    /// values: the samples (any order).
    public init(_ values: [Double], support: (Double, Double)? = nil, units: String? = nil) {
        let n = Double(values.count)
        let m = values.reduce(0, +) / n
        let v = values.reduce(0) { $0 + ($1 - m) * ($1 - m) } / max(n - 1, 1)
        let s = values.sorted()
        mean = rounded(m); sd = rounded(v.squareRoot())
        q05 = rounded(quantile(s, 0.05)); q25 = rounded(quantile(s, 0.25)); q50 = rounded(quantile(s, 0.5))
        q75 = rounded(quantile(s, 0.75)); q95 = rounded(quantile(s, 0.95))
        if let (lo, hi) = support {
            outsideSupport = rounded(Double(values.filter { $0 < lo || $0 > hi }.count) / n)
            priorRange = [lo, hi]
        }
        self.units = units
    }
}

/// Quantile bands of a variable along a time grid (model time units).
public struct BandSummary: Codable, Equatable, Sendable {
    public var time: [Double]
    public var timeUnits: String?
    public var mean: [Double]
    public var q05: [Double], q25: [Double], q50: [Double], q75: [Double], q95: [Double]
    public var units: String?
    /// Function-valued parameters: 1 - posterior variance / prior variance at each time.
    public var contraction: [Double]?
    public var priorRange: [Double]?
    public var calibrationCaution: String?
    /// How the model answered the query grid: directly at every time, or by interpolation.
    public var answeredBy: QueryAnswer?

    enum CodingKeys: String, CodingKey {
        case time, mean, q05, q25, q50, q75, q95, units, contraction
        case timeUnits = "time_units", priorRange = "prior_range", calibrationCaution = "calibration_caution"
        case answeredBy = "answered_by"
    }

    /// columns[i]: the samples at time i.
    public init(time: [Double], columns: [[Double]], timeUnits: String?, units: String?) {
        self.time = time.map(rounded); self.timeUnits = timeUnits; self.units = units
        let stats = columns.map { ScalarSummary($0) }
        mean = stats.map(\.mean); q05 = stats.map(\.q05); q25 = stats.map(\.q25)
        q50 = stats.map(\.q50); q75 = stats.map(\.q75); q95 = stats.map(\.q95)
    }
}


/// x to 6 significant digits, so reports print short, stable numbers.
func rounded(_ x: Double) -> Double {
    guard x.isFinite, x != 0 else { return x }
    return Double(String(format: "%.6g", x)) ?? x
}
