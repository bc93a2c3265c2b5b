import Foundation
import XCTest
import SbiTestSupport

/// `sbiwatch generate`: the recipes name absolute, checked paths and match the binary's flags; the
/// array script runs its chunk and exits with the worst status (run here by bash, as Slurm would).
final class GenerateCommandTests: SpoolTestCase {
    var models: String { path("models") }

    override func setUpWithError() throws {
        try super.setUpWithError()
        try "sird=\(TinyModels.sird)\n".write(toFile: models, atomically: true, encoding: .utf8)
    }

    func generate(_ args: [String], status: Int32 = 0) throws -> RunResult {
        let r = try CLI.run(["generate"] + args, cwd: URL(fileURLWithPath: path(".")))
        XCTAssertEqual(r.status, status, r.stderr)
        return r
    }

    /// 7 files in chunks of 3: tasks 0-2; task 2 runs the last file only. Each task is run here with
    /// SLURM_ARRAY_TASK_ID and exits with its worst file's status (65 for the bad one).
    func testSlurmArrayChunksAndExitsWithTheWorstStatus() throws {
        var files = try (0..<6).map { try staged("f\($0).nc", seed: 40 + $0) }
        FileManager.default.createFile(atPath: path("staging/zz-bad.nc"), contents: Data("junk".utf8))
        files.append(path("staging/zz-bad.nc"))
        // relative paths are relative to the list's folder
        try (["# regions", ""] + files.map { "staging/" + URL(fileURLWithPath: $0).lastPathComponent })
            .joined(separator: "\n").write(toFile: path("list.txt"), atomically: true, encoding: .utf8)
        let script = try generate(["slurm-array", "--files", "list.txt", "--outbox", "out", "--config", "models", "--samples", "5",
                                   "--chunk", "3", "--max-running", "2", "--", "--partition=short", "--time=00:05:00"]).stdout
        XCTAssert(script.contains("#SBATCH --array=0-2%2\n"), script)
        XCTAssert(script.contains("#SBATCH --partition=short\n#SBATCH --time=00:05:00\n"), script)
        XCTAssert(script.contains("--outbox \(outbox) --config \(models) --samples 5"), script)
        XCTAssert(script.contains(path("staging/f0.nc")), "paths made absolute: \(script)")
        try script.write(toFile: path("array.sh"), atomically: true, encoding: .utf8)
        XCTAssertEqual(try Tool.run("/bin/bash", ["-n", path("array.sh")]).status, 0)
        for (task, expected) in [(0, 0), (1, 0), (2, 65)] {
            let r = try Tool.run("/bin/bash", [path("array.sh")], environment: ["SLURM_ARRAY_TASK_ID": "\(task)"])
            XCTAssertEqual(r.status, Int32(expected), "task \(task): \(r.stderr)")
            XCTAssertEqual(r.stderr.components(separatedBy: "sbiwatch-array: task \(task):").count - 1, task == 2 ? 1 : 3, r.stderr)
        }
        XCTAssertEqual(names(outbox).filter { $0.hasSuffix(".report.json") }.count, 6)
        XCTAssert(FileManager.default.fileExists(atPath: outbox + "/zz-bad.error.json"))
        XCTAssertNotEqual(try Tool.run("/bin/bash", [path("array.sh")]).status, 0, "outside Slurm the script refuses to run")
    }

    /// Without --chunk the array stays within MaxArraySize; a chunk that would exceed it, a list
    /// with two files of one stem, or a missing file is refused naming the fix.
    func testSlurmArraySizingAndRefusals() throws {
        let files = try (0..<5).map { try staged("g\($0).nc", seed: 60 + $0) }
        try files.joined(separator: "\n").write(toFile: path("list.txt"), atomically: true, encoding: .utf8)
        let fits = try generate(["slurm-array", "--files", "list.txt", "--outbox", "out", "--config", "models", "--max-array-size", "2"]).stdout
        XCTAssert(fits.contains("#SBATCH --array=0-1\n") && fits.contains("chunk=3\n"), fits)
        let tooMany = try generate(["slurm-array", "--files", "list.txt", "--outbox", "out", "--config", "models", "--max-array-size", "2",
                                    "--chunk", "1"], status: 64)
        XCTAssert(tooMany.stderr.contains("more than Slurm's MaxArraySize of 2") && tooMany.stderr.contains("--chunk 3"), tooMany.stderr)
        try FileManager.default.createDirectory(atPath: path("other"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: files[0], toPath: path("other/g0.nc"))
        try (files + [path("other/g0.nc")]).joined(separator: "\n").write(toFile: path("dup.txt"), atomically: true, encoding: .utf8)
        let dup = try generate(["slurm-array", "--files", "dup.txt", "--outbox", "out", "--config", "models"], status: 64)
        XCTAssert(dup.stderr.contains("would both write outputs named g0.*"), dup.stderr)
        try "missing.nc\n".write(toFile: path("missing.txt"), atomically: true, encoding: .utf8)
        let missing = try generate(["slurm-array", "--files", "missing.txt", "--outbox", "out", "--config", "models"], status: 66)
        XCTAssert(missing.stderr.contains("\(path("missing.nc")), listed in missing.txt, does not exist"), missing.stderr)
        let noOutbox = try generate(["slurm-workers", "--inbox", "in", "--outbox", "nowhere", "--config", "models", "--workers", "2"], status: 66)
        XCTAssert(noOutbox.stderr.contains("(--outbox) is not a folder"), noOutbox.stderr)
        try "# nothing\n".write(toFile: path("empty-models"), atomically: true, encoding: .utf8)
        let badModels = try generate(["slurm-workers", "--inbox", "in", "--outbox", "out", "--config", "empty-models", "--workers", "2"], status: 78)
        XCTAssertFalse(badModels.stderr.isEmpty)
    }

    /// The worker array, systemd units and crontab line run the daemon with the given folders.
    func testWorkersSystemdAndCrontabRecipes() throws {
        let workers = try generate(["slurm-workers", "--inbox", "in", "--outbox", "out", "--config", "models", "--workers", "4",
                                    "--state", "state", "--", "--cpus-per-task=2"]).stdout
        XCTAssert(workers.contains("#SBATCH --array=0-3\n#SBATCH --output=sbiwatch-workers-%A_%a.log\n#SBATCH --cpus-per-task=2\n"), workers)
        XCTAssert(workers.contains(" --inbox \(inbox) --outbox \(outbox) --config \(models) --state \(path("state")) --once --jobs 1\n"), workers)
        let units = try generate(["systemd", "--inbox", "in", "--outbox", "out", "--config", "models", "--user", "surv",
                                  "--on-calendar", "*-*-* 03:30"]).stdout
        for expected in ["# /etc/systemd/system/sbiwatch-watch.service", "# /etc/systemd/system/sbiwatch-nightly.timer", "User=surv",
                         "OnCalendar=*-*-* 03:30", "SuccessExitStatus=75", "ExecReload=/bin/kill -HUP $MAINPID",
                         "--inbox \(inbox) --outbox \(outbox) --config \(models) --once\n"] {
            XCTAssert(units.contains(expected), "\(expected) missing from\n\(units)")
        }
        try FileManager.default.createDirectory(atPath: path("in%put"), withIntermediateDirectories: true)
        let cron = try generate(["crontab", "--inbox", "in%put", "--outbox", "out", "--config", "models", "--schedule", "15 1 * * *",
                                 "--log", "logs/sbiwatch.log"]).stdout
        let line = cron.split(separator: "\n").last.map(String.init) ?? ""
        XCTAssert(line.hasPrefix("15 1 * * *  "), cron)
        XCTAssert(line.contains("in\\%put") && line.contains("--once --log-format json 2>>\(path("logs/sbiwatch.log"))"), cron)
        // an argument with a line break would start a line of the recipe of its own: refused, in every recipe
        for args in [["slurm-workers", "--inbox", "in", "--outbox", "out", "--config", "models", "--workers", "1", "--", "--comment=x\ntouch y"],
                     ["systemd", "--inbox", "in", "--outbox", "out", "--config", "models", "--user", "x\ntouch"],
                     ["crontab", "--inbox", "in", "--outbox", "out", "--config", "models", "--log", "a\nb"]] {
            let refused = try generate(args, status: 64)
            XCTAssert(refused.stderr.contains("holds a line break"), refused.stderr)
        }
        let badSchedule = try generate(["crontab", "--inbox", "in", "--outbox", "out", "--config", "models", "--schedule", "daily"], status: 64)
        XCTAssert(badSchedule.stderr.contains("is not five cron fields"), badSchedule.stderr)
    }
}
