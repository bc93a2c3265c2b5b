import ArgumentParser
import Foundation
import SbiCore

/// `sbiwatch bench spool`: files per minute when N workers (processes of this binary, `--once
/// --jobs 1`) drain one inbox together, for each N, on copies of the given observation files.
struct BenchSpool: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "spool",
        abstract: "Files per minute drained by 1, 2, 4, ... workers sharing one inbox.",
        discussion: "Each round copies the observation files of --files (each --copies times, under distinct names) into a fresh inbox, starts the workers at once and times them until the last exits; every file must end in done/. Workers run with --jobs 1 and share the machine's cores.")

    @Option(help: ArgumentHelp("A folder of observation files (e.g. fixtures/inbox).", valueName: "dir"))
    var files: String

    @Option(help: ArgumentHelp("The models file the workers use.", valueName: "models-file"))
    var config: String

    @Option(help: "Copies of each file per round.")
    var copies: Int = 4

    @Option(help: "Worker counts, comma-separated.")
    var workers: String = "1,2,4"

    @Option(help: "Posterior samples per file (default: the file's or the model's, as in the demo).")
    var samples: Int?

    @OptionGroup var output: BenchOutput

    struct Round: Encodable {
        var workers: Int, files: Int, seconds: Double, filesPerMinute: Double
        enum CodingKeys: String, CodingKey { case workers, files, seconds, filesPerMinute = "files_per_minute" }
    }

    func run() throws {
        let counts = workers.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !counts.isEmpty, counts.allSatisfy({ (1...64).contains($0) }), copies >= 1 else {
            throw SbiError(.usage, "--workers must list counts between 1 and 64, --copies at least 1")
        }
        let inputs = try FileManager.default.contentsOfDirectory(atPath: files).filter { $0.hasSuffix(".nc") }.sorted()
        guard !inputs.isEmpty else { throw SbiError(.noInput, "no .nc files in \(files)", hint: "pass --files with a folder of observation files") }
        let rounds = try counts.map { try round($0, inputs: inputs) }
        try output.print(rounds) {
            rounds.map { "\($0.workers) worker(s): \($0.files) files in \(String(format: "%.1f", $0.seconds)) s, \(String(format: "%.1f", $0.filesPerMinute)) files/min\n" }.joined()
        }
    }

    func round(_ count: Int, inputs: [String]) throws -> Round {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("sbiwatch-bench-spool-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let inbox = root + "/in", outbox = root + "/out"
        for d in [inbox, outbox] { try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true) }
        for name in inputs {
            for k in 0..<copies {
                try FileManager.default.copyItem(atPath: files + "/" + name, toPath: inbox + "/" + name.replacingOccurrences(of: ".nc", with: "-\(k).nc"))
            }
        }
        let total = inputs.count * copies
        FileHandle.standardError.write(Data("bench spool: \(count) worker(s) on \(total) files\n".utf8))
        let binary = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        let t0 = Date()
        let processes = try (0..<count).map { _ -> Foundation.Process in
            let p = Foundation.Process()
            p.executableURL = binary
            p.arguments = ["--inbox", inbox, "--outbox", outbox, "--config", config, "--once", "--jobs", "1",
                           "--settle", "0.2"] + (samples.map { ["--samples", "\($0)"] } ?? [])
            p.standardError = FileHandle.nullDevice; p.standardOutput = FileHandle.nullDevice
            try p.run()
            return p
        }
        for p in processes { p.waitUntilExit() }
        let seconds = Date().timeIntervalSince(t0)
        let done = (try? FileManager.default.contentsOfDirectory(atPath: inbox + "/.sbiwatch/done"))?.count ?? 0
        guard done == total else {
            throw SbiError(.internalError, "\(count) workers finished \(done) of \(total) files (exit statuses \(processes.map(\.terminationStatus)))",
                           hint: "run the workers by hand on a copy of \(files) to see their logs")
        }
        return Round(workers: count, files: total, seconds: seconds, filesPerMinute: Double(total) / seconds * 60)
    }
}
