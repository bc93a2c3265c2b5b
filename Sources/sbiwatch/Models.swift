import ArgumentParser
import Foundation
import SbiArchive
import SbiChecks
import SbiCore
import SbiModel
import SbiPipeline

/// `sbiwatch models`: the models a command would use, with what a file may ask of them.
struct Models: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the models found (--model, --config, or the first models file on the search path).",
        discussion: "For each model: the name an observation file gives in sbiwatch_model, its pin, its variables and its stored calibration. The search path: $SBIWATCH_MODELS, ./sbiwatch.models, $XDG_CONFIG_HOME/sbiwatch/models, /etc/sbiwatch/models, then the models installed with sbiwatch.")

    @OptionGroup var models: ModelOptions

    @Flag(help: "Print the list as JSON (sorted keys).")
    var json = false

    struct Entry: Encodable {
        var name: String
        var pin: String
        var task: String?
        var variables: [String]
        var calibration: String
    }

    struct Listing: Encodable {
        var modelsFile: String?
        var models: [Entry]
        enum CodingKeys: String, CodingKey { case models, modelsFile = "models_file" }
    }

    func run() throws {
        let catalog = try models.catalog()
        let entries = try catalog.references.map { r -> Entry in
            let loaded = try catalog.load(r)
            return Entry(name: r.name, pin: "\(loaded.path)@sha256:\(loaded.sha256)", task: loaded.manifest.provenance.task,
                         variables: loaded.manifest.spec.variables.map(Self.describe),
                         calibration: Self.calibrationSummary(loaded.calibration))
        }
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.sortedKeys, .prettyPrinted]
            print(String(decoding: try enc.encode(Listing(modelsFile: catalog.modelsFile, models: entries)), as: UTF8.self))
            return
        }
        print("models file: \(catalog.modelsFile ?? "none (--model)")")
        for e in entries {
            print("\(e.name)\n  pin:         \(e.pin)\n  task:        \(e.task ?? "trained from a simulation file")")
            print("  variables:   \(e.variables.joined(separator: "; "))\n  calibration: \(e.calibration)")
        }
    }

    /// "gamma (parameter)", "theta (parameter, 10 values)", "infected (data series on [0, 50] days)".
    static func describe(_ v: VariableSpec) -> String {
        if let axis = v.time {
            let what = v.kind == .parameter ? "function-valued parameter" : "data series"
            return "\(v.name) (\(what) on [\(fmt(axis.lower)), \(fmt(axis.upper))]\(axis.units.map { " " + $0 } ?? ""))"
        }
        return "\(v.name) (\(v.kind.rawValue)\(v.size == 1 ? "" : ", \(v.size) values"))"
    }

    /// "measured on 300 cases, SBC passed for all 4 scalars", or why there is none.
    static func calibrationSummary(_ c: ModelCalibration?) -> String {
        guard let c else { return "none stored (add it with `sbiwatch calibrate`)" }
        guard c.measured else { return "skipped (\(c.note ?? "no reason recorded"))" }
        let failed = c.failed().map(\.name)
        return "measured on \(c.cases) held-out simulations; SBC "
            + (failed.isEmpty ? "passed for all \(c.parameters.count) scalars" : "failed for \(failed.joined(separator: ", "))")
    }

    static func fmt(_ x: Double) -> String { x == x.rounded() && abs(x) < 1e9 ? String(Int(x)) : String(x) }
}
