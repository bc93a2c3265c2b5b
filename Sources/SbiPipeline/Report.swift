// STEM.report.json: summaries, observed points, diagnostics, provenance and timings. Keys are
// sorted and numbers rounded to 6 significant digits, so the same input, model and seed give the
// same bytes apart from `created` and `timings_seconds`.
import Foundation
import SbiChecks
import SbiCore

public struct Report: Codable, Sendable {
    public struct Input: Codable, Sendable { public var file: String; public var sha256: String }
    public struct Model: Codable, Sendable {
        public var name: String
        public var sha256: String
        public var task: String?
        /// The models file the model was configured in (--config or the search path), if any.
        public var modelsFile: String?

        enum CodingKeys: String, CodingKey {
            case name, sha256, task
            case modelsFile = "models_file"
        }
    }
    public struct Sampling: Codable, Sendable {
        public var method: String
        public var steps: Int
        public var samples: Int
        public var seed: UInt64
        public var resampling: Int
    }
    public struct ObservedSeries: Codable, Equatable, Sendable {
        public var time: [Double]
        public var value: [Double]
    }
    public struct Observed: Codable, Sendable {
        public var series: [String: ObservedSeries]
        public var scalars: [String: Double]
        /// label -> [lower, upper]; open sides are null
        public var intervals: [String: [Double?]]
        /// The calendar date of time 0, when the file's times are "UNIT since DATE".
        public var calendar: CalendarOrigin?
    }
    public struct Diagnostics: Codable, Sendable {
        /// ok, caution or unreliable
        public var verdict: String
        /// Why, in plain language.
        public var reasons: [String]
        /// The data checks' smallest p-value adjusted for their number (what the verdict's levels apply to).
        public var combinedPValue: Double?
        /// How: `held_out` (ranked among the model's held-out cases) or `sidak`.
        public var combination: VerdictCombination?
        public var checks: [Check]
        public var warnings: [String]
        public var notes: [String]

        enum CodingKeys: String, CodingKey {
            case verdict, reasons, checks, warnings, notes, combination
            case combinedPValue = "combined_p_value"
        }
    }
    /// Replicated data from the posterior at the observed points of one data variable.
    public struct PredictiveBand: Codable, Sendable {
        /// Observation times (time series), or nil for the elements of a fixed-size variable.
        public var time: [Double]?
        public var observed: [Double]
        public var q05: [Double], q25: [Double], q50: [Double], q75: [Double], q95: [Double]
        public var pValue: Double
        public var replicates: Int

        enum CodingKeys: String, CodingKey {
            case time, observed, q05, q25, q50, q75, q95, replicates
            case pValue = "p_value"
        }
    }

    public var format = "sbiwatch-report-1"
    public var created: String
    public var input: Input
    public var model: Model
    public var sampler: Sampling
    public var parameters: [String: ScalarSummary]
    /// Function-valued parameters on their query grids.
    public var functions: [String: BandSummary]
    /// Data variables queried (predictions, forecasts).
    public var predictions: [String: BandSummary]
    public var observed: Observed
    /// The file's constraints (sbiwatch_constraints) and how many draws satisfy each; nil without any.
    public var constraints: [ConstraintSummary]? = nil
    /// Where the file has constraints: the scalar parameters of the same query sampled without
    /// them (observations only), beside `parameters`, which obey them. Nil without constraints.
    public var unconstrainedParameters: [String: ScalarSummary]? = nil
    /// Per observed data variable: the posterior predictive band at the observed points.
    public var posteriorPredictive: [String: PredictiveBand]
    public var diagnostics: Diagnostics
    public var timingsSeconds: [String: Double]
    public var sbiwatchVersion: String

    enum CodingKeys: String, CodingKey {
        case format, created, input, model, sampler, parameters, functions, predictions, observed, diagnostics, constraints
        case posteriorPredictive = "posterior_predictive"
        case unconstrainedParameters = "unconstrained_parameters"
        case timingsSeconds = "timings_seconds"
        case sbiwatchVersion = "sbiwatch_version"
    }

    public func encoded() throws -> Data {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        var data = try e.encode(self)
        data.append(0x0a)
        return data
    }
}

/// One constraint of a file and the fraction of the draws that satisfy it.
public struct ConstraintSummary: Codable, Equatable, Sendable {
    public var expression: String
    /// The fraction of the (guided) draws that satisfy it.
    public var satisfied: Double
    /// The fraction of the draws of the same query without any constraint that satisfy it.
    public var satisfiedWithout: Double?
    public init(expression: String, satisfied: Double, satisfiedWithout: Double? = nil) {
        self.expression = expression; self.satisfied = satisfied; self.satisfiedWithout = satisfiedWithout
    }

    enum CodingKeys: String, CodingKey {
        case expression, satisfied
        case satisfiedWithout = "satisfied_without_constraints"
    }
}

/// What a bad input file produced instead of results: STEM.error.json.
public struct ErrorReport: Codable, Sendable {
    public var format = "sbiwatch-error-1"
    public var file: String
    public var inputSHA256: String?
    public var code: String
    public var exitStatus: Int32
    public var message: String
    public var whatToDo: String?
    public var created: String
    public var sbiwatchVersion: String

    enum CodingKeys: String, CodingKey {
        case format, file, code, message, created
        case exitStatus = "exit_status"
        case inputSHA256 = "input_sha256"
        case whatToDo = "what_to_do"
        case sbiwatchVersion = "sbiwatch_version"
    }

    public init(file: String, error: SbiError, created: String) {
        self.file = file; code = error.code.rawValue; exitStatus = error.exitStatus
        message = error.text; whatToDo = error.advice; self.created = created; sbiwatchVersion = SbiCore.sbiwatchVersion
    }

    public func encoded() throws -> Data {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        var data = try e.encode(self)
        data.append(0x0a)
        return data
    }
}
