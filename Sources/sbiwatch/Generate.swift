import ArgumentParser
import Foundation
import SbiCore
import SbiDaemon
import SbiPipeline

/// `sbiwatch generate`: deployment recipes that match this binary's flags.
struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print deployment recipes: Slurm job arrays, systemd units, a crontab line.",
        discussion: "Paths are made absolute and checked, so a recipe runs from anywhere. Regenerate a recipe after upgrading sbiwatch rather than editing it.",
        subcommands: [SlurmArray.self, SlurmWorkers.self, Systemd.self, Crontab.self])
}

/// What every recipe names: the binary, the outbox, the models file, and sampling overrides.
struct RecipeOptions: ParsableArguments {
    @Option(help: "The folder outputs are written to.")
    var outbox: String

    @Option(help: ArgumentHelp("The models file the runs use (checked now).", valueName: "models-file"))
    var config: String

    @Option(help: "The sbiwatch binary the recipe runs (default: this one; on a cluster it must be reachable from every node).")
    var sbiwatch: String?

    @Option(help: "Posterior samples per file, passed to every run (default: the file's or the model's).")
    var samples: Int?

    @Option(help: "Sampling steps, passed to every run (default: the model's).")
    var steps: Int?

    func target(inbox: String? = nil, state: String? = nil) throws -> RecipeTarget {
        let binary = sbiwatch.map(absolute) ?? URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        guard access(binary, X_OK) == 0 else { throw SbiError(.usage, "\(binary) is not an executable", hint: "pass --sbiwatch with the path of the sbiwatch binary") }
        try requireFolder(outbox, "--outbox")
        if let inbox { try requireFolder(inbox, "--inbox") }
        _ = try ModelReference.readFile(absolute(config))   // a models file that lists no model, or a broken line, is refused now
        var t = RecipeTarget(binary: binary, outbox: absolute(outbox), config: absolute(config), inbox: inbox.map(absolute), state: state.map(absolute))
        if let samples { t.extraArguments += ["--samples", "\(samples)"] }
        if let steps { t.extraArguments += ["--steps", "\(steps)"] }
        return t
    }
}

func absolute(_ path: String) -> String { URL(fileURLWithPath: path).standardizedFileURL.path }

func requireFolder(_ path: String, _ option: String) throws {
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue else {
        throw SbiError(.noInput, "\(path) (\(option)) is not a folder", hint: "create it first; recipes name existing folders")
    }
}

/// Recipes are line formats (#SBATCH lines, unit files, a crontab line, the header comment): an
/// argument with a line break would start a line of its own, so none may hold one.
func checkSingleLine(_ arguments: [String] = Array(CommandLine.arguments.dropFirst())) throws {
    if let bad = arguments.first(where: { $0.contains(where: \.isNewline) }) {
        throw SbiError(.usage, "the argument \(bad.debugDescription) holds a line break, which would break the recipe's lines",
                       hint: "give every path and option on one line")
    }
}

/// The generating command, for the recipe's header.
func generatedBy() -> String {
    "sbiwatch \(sbiwatchVersion): " + Recipes.commandLine(["sbiwatch"] + CommandLine.arguments.dropFirst())
}

extension Generate {
    struct SlurmArray: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "slurm-array",
            abstract: "Print an sbatch job-array script that runs `sbiwatch process` on every file of a list.",
            discussion: "Options after -- become #SBATCH lines (e.g. -- --partition=short --time=00:30:00 --cpus-per-task=2). Each array task processes --chunk files and exits with the worst status of them; `sbatch --wait` exits with the worst task's.")

        @Option(help: ArgumentHelp("A file with one observation file path per line ('#' comments, blank lines skipped).", valueName: "list"))
        var files: String

        @OptionGroup var recipe: RecipeOptions

        @Option(help: "Files per array task (default: as few as keep the array within --max-array-size).")
        var chunk: Int?

        @Option(name: .customLong("max-array-size"), help: "Slurm's MaxArraySize (default: from `scontrol show config`, else 1001).")
        var maxArraySize: Int?

        @Option(name: .customLong("max-running"), help: "Array tasks running at once (the %N throttle; default: no limit).")
        var maxRunning: Int?

        @Argument(parsing: .postTerminator, help: "sbatch options.")
        var sbatchOptions: [String] = []

        func run() throws {
            try checkSingleLine()
            let list = try FileList.read(files)
            let layout = try ArrayLayout.plan(files: list.count, chunk: chunk, maxArraySize: maxArraySize ?? SlurmConfig.maxArraySize() ?? 1001)
            if let maxRunning, maxRunning < 1 { throw SbiError(.usage, "--max-running must be at least 1") }
            print(Recipes.slurmArray(files: list, target: try recipe.target(), layout: layout, maxRunning: maxRunning,
                                     sbatchOptions: sbatchOptions, generatedBy: generatedBy()), terminator: "")
        }
    }

    struct SlurmWorkers: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "slurm-workers",
            abstract: "Print an sbatch job-array script of N `sbiwatch --once` workers draining one shared inbox.",
            discussion: "Options after -- become #SBATCH lines. The workers share the inbox safely on one node or many (man sbiwatch, SPOOL); `sbatch --wait` exits with the worst worker's status.")

        @Option(help: "The shared inbox (on a filesystem every node sees).")
        var inbox: String

        @OptionGroup var recipe: RecipeOptions

        @Option(help: "The state folder (default: INBOX/.sbiwatch).")
        var state: String?

        @Option(help: "Workers (array tasks).")
        var workers: Int

        @Argument(parsing: .postTerminator, help: "sbatch options.")
        var sbatchOptions: [String] = []

        func run() throws {
            guard (1...100_000).contains(workers) else { throw SbiError(.usage, "--workers must be between 1 and 100000") }
            try checkSingleLine()
            print(Recipes.slurmWorkers(target: try recipe.target(inbox: inbox, state: state), workers: workers,
                                       sbatchOptions: sbatchOptions, generatedBy: generatedBy()), terminator: "")
        }
    }

    struct Systemd: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print systemd units: a watch service, and a nightly run with its timer.")

        @Option(help: "The inbox.")
        var inbox: String

        @OptionGroup var recipe: RecipeOptions

        @Option(help: "The user the service runs as.")
        var user = "sbiwatch"

        @Option(name: .customLong("working-directory"), help: "The service's working directory (default: the current one).")
        var workingDirectory: String?

        @Option(name: .customLong("on-calendar"), help: "When the nightly run starts (systemd OnCalendar).")
        var onCalendar = "*-*-* 02:00"

        func run() throws {
            try checkSingleLine()
            print(Recipes.systemd(target: try recipe.target(inbox: inbox), user: user,
                                  workingDirectory: absolute(workingDirectory ?? FileManager.default.currentDirectoryPath),
                                  onCalendar: onCalendar, generatedBy: generatedBy()), terminator: "")
        }
    }

    struct Crontab: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print a crontab line that drains the inbox on a schedule.")

        @Option(help: "The inbox.")
        var inbox: String

        @OptionGroup var recipe: RecipeOptions

        @Option(help: "The cron schedule.")
        var schedule = "0 2 * * *"

        @Option(help: "The log file the JSON log lines are appended to.")
        var log: String = "sbiwatch.log"

        func run() throws {
            try checkSingleLine()
            guard schedule.split(separator: " ").count == 5 || schedule.hasPrefix("@") else {
                throw SbiError(.usage, "--schedule '\(schedule)' is not five cron fields or an @ keyword", hint: "e.g. --schedule '0 2 * * *' or --schedule @daily")
            }
            print(Recipes.crontab(target: try recipe.target(inbox: inbox), schedule: schedule, log: absolute(log),
                                  generatedBy: generatedBy()), terminator: "")
        }
    }
}

/// A list of observation files: one path per line, made absolute; refused when two share an output stem.
enum FileList {
    static func read(_ path: String) throws -> [String] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw SbiError(.noInput, "cannot read the file list \(path)", hint: "pass --files with a text file of one path per line")
        }
        let base = URL(fileURLWithPath: path).deletingLastPathComponent()
        let files = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty && !$0.hasPrefix("#") }
            .map { $0.hasPrefix("/") ? absolute($0) : absolute(base.appendingPathComponent($0).path) }
        var byStem: [String: String] = [:]
        for f in files {
            guard FileManager.default.isReadableFile(atPath: f) else {
                throw SbiError(.noInput, "\(f), listed in \(path), does not exist or cannot be read", hint: "fix the list (relative paths are relative to the list's folder)")
            }
            let stem = Pipeline.stem(of: URL(fileURLWithPath: f).lastPathComponent)
            if let other = byStem[stem] {
                throw SbiError(.usage, "\(other) and \(f) in \(path) would both write outputs named \(stem).*",
                               hint: "rename one of them, or give them separate --outbox folders")
            }
            byStem[stem] = f
        }
        return files
    }
}

/// Slurm's configuration, when scontrol is on PATH and answers.
enum SlurmConfig {
    static func maxArraySize() -> Int? {
        let p = Foundation.Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["scontrol", "show", "config"]
        let out = Pipe()
        p.standardOutput = out; p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return nil }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { return nil }
        let line = String(decoding: data, as: UTF8.self).split(separator: "\n").first { $0.hasPrefix("MaxArraySize") }
        return line.flatMap { $0.split(separator: "=").last }.flatMap { Int($0.trimmingCharacters(in: .whitespaces)) }
    }
}
