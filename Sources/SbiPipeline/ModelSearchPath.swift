// Where the models come from when a command names none (no --model, no --config): the first
// models file found on a documented search path (README, "Models"; man sbiwatch, FILES):
//   1. $SBIWATCH_MODELS (a models file; set but missing is an error)
//   2. ./sbiwatch.models
//   3. $XDG_CONFIG_HOME/sbiwatch/models (default ~/.config/sbiwatch/models)
//   4. /etc/sbiwatch/models
//   5. PREFIX/share/sbiwatch/models/models beside the binary (`make install`; found from the
//      executable's own path, so a relocated prefix works)
// A file found on the path that cannot be read or parsed is an error naming it (exit 78); it is
// never skipped in favour of a later step.
import Foundation
import SbiCore

public struct ModelSearchPath: Sendable {
    /// One place on the path.
    public struct Step: Sendable, Equatable {
        public var path: String
        /// How the README names the step, e.g. "$SBIWATCH_MODELS".
        public var origin: String
        /// A step that must exist when it is on the path at all ($SBIWATCH_MODELS).
        public var required: Bool
    }

    public var steps: [Step]

    /// The path for this process: its environment, working directory and executable.
    public static func current() -> ModelSearchPath {
        ModelSearchPath(environment: ProcessInfo.processInfo.environment,
                        workingDirectory: FileManager.default.currentDirectoryPath,
                        executable: URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path)
    }

    public init(environment env: [String: String], workingDirectory: String, executable: String) {
        var steps: [Step] = []
        if let explicit = env["SBIWATCH_MODELS"], !explicit.isEmpty {
            let path = explicit.hasPrefix("/") ? explicit : workingDirectory + "/" + explicit
            steps.append(Step(path: path, origin: "$SBIWATCH_MODELS", required: true))
        }
        steps.append(Step(path: workingDirectory + "/sbiwatch.models", origin: "./sbiwatch.models", required: false))
        let home = env["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
        let config = env["XDG_CONFIG_HOME"].flatMap { $0.hasPrefix("/") ? $0 : nil } ?? home + "/.config"
        steps.append(Step(path: config + "/sbiwatch/models", origin: "$XDG_CONFIG_HOME/sbiwatch/models", required: false))
        steps.append(Step(path: "/etc/sbiwatch/models", origin: "/etc/sbiwatch/models", required: false))
        let prefix = URL(fileURLWithPath: executable).deletingLastPathComponent().deletingLastPathComponent().path
        steps.append(Step(path: prefix + "/share/sbiwatch/models/models", origin: "the models installed with sbiwatch", required: false))
        self.steps = steps
    }

    /// The first step whose file exists; $SBIWATCH_MODELS set to a missing file is an error.
    public func find() throws -> Step {
        for step in steps {
            if FileManager.default.fileExists(atPath: step.path) { return step }
            if step.required {
                throw SbiError(.configuration, "the models file \(step.path) named by \(step.origin) does not exist",
                               hint: "point SBIWATCH_MODELS at a models file (one NAME=ARCHIVE@sha256:HEX per line), or unset it")
            }
        }
        let tried = steps.map { "\($0.path) (\($0.origin))" }.joined(separator: ", ")
        throw SbiError(.configuration, "no model given, and no models file on the search path (tried \(tried))",
                       hint: "pass --model NAME=ARCHIVE@sha256:HEX or --config MODELS, write ./sbiwatch.models, or install the shipped models with `make install`")
    }

    /// The catalog of the first models file on the path.
    public func catalog() throws -> ModelCatalog {
        let step = try find()
        do {
            return try ModelCatalog(try ModelReference.readFile(step.path), modelsFile: step.path)
        } catch let e as SbiError {
            throw SbiError(.configuration, "\(e.text) (found as \(step.origin))", hint: e.hint)
        }
    }
}
