import Foundation
import XCTest
import SbiTestSupport

/// Slurm is installed but does not come up: the test fails (it is skipped only where Slurm cannot be
/// installed or the test is not root).
struct SlurmSetupFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A real single-node Slurm (Debian's slurmctld and slurmd, munge), started here without systemd
/// and bound to localhost, state and logs in a temporary folder; stopped by pid.
final class LocalSlurm {
    let root: String
    var conf: String { root + "/slurm.conf" }
    private var startedMunge = false

    static let binaries = ["/usr/sbin/slurmctld", "/usr/sbin/slurmd", "/usr/sbin/munged", "/usr/bin/sbatch", "/usr/bin/sinfo"]

    /// Why Slurm cannot run here, or nil.
    static var unavailable: String? {
        guard getuid() == 0 else { return "the Slurm test needs root (it starts slurmctld, slurmd and munged)" }
        let missing = binaries.filter { access($0, X_OK) != 0 }
        return missing.isEmpty ? nil : "Slurm is not installed (missing \(missing.joined(separator: ", "))); `make test-deps` installs slurmctld slurmd slurm-client munge"
    }

    init(root: String) throws {
        self.root = root
        for d in ["state", "spool", "logs"] { try FileManager.default.createDirectory(atPath: root + "/" + d, withIntermediateDirectories: true) }
        try configuration.write(toFile: conf, atomically: true, encoding: .utf8)
        do { try start() } catch { stop(); throw error }
    }

    /// munged, slurmctld and slurmd, then waits (at most 60 s) for the node to be idle.
    private func start() throws {
        try startMunge()
        for (daemon, args) in [("/usr/sbin/slurmctld", ["-f", conf]), ("/usr/sbin/slurmd", ["-f", conf, "-N", "localhost"])] {
            let r = try daemonize(daemon, args)
            guard r.status == 0 else { throw SlurmSetupFailure("\(daemon) did not start: \(r.stderr) \(log("slurmctld")) \(log("slurmd"))") }
        }
        let end = Date().addingTimeInterval(60)
        while try run("/usr/bin/sinfo", ["-h", "-o", "%T"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines) != "idle" {
            guard Date() < end else { throw SlurmSetupFailure("the local Slurm node never became idle: \(log("slurmctld")) \(log("slurmd"))") }
            usleep(250_000)
        }
    }

    var configuration: String {
        """
        ClusterName=sbiwatchtest
        SlurmctldHost=localhost
        SlurmUser=root
        SlurmdUser=root
        AuthType=auth/munge
        CredType=cred/munge
        ProctrackType=proctrack/linuxproc
        TaskPlugin=task/none
        SelectType=select/cons_tres
        SelectTypeParameters=CR_CPU
        CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
        StateSaveLocation=\(root)/state
        SlurmdSpoolDir=\(root)/spool
        SlurmctldPidFile=\(root)/slurmctld.pid
        SlurmdPidFile=\(root)/slurmd.pid
        SlurmctldLogFile=\(root)/slurmctld.log
        SlurmdLogFile=\(root)/slurmd.log
        ReturnToService=2
        MpiDefault=none
        JobAcctGatherType=jobacct_gather/none
        AccountingStorageType=accounting_storage/none
        SchedulerType=sched/backfill
        MaxArraySize=1001
        NodeName=localhost CPUs=2 State=UNKNOWN
        PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP

        """
    }

    /// munged as the munge user, after creating /run/munge (unless one runs already).
    private func startMunge() throws {
        if FileManager.default.fileExists(atPath: "/run/munge/munge.socket.2"), try Tool.run("/usr/bin/pgrep", ["-x", "munged"]).status == 0 { return }
        try FileManager.default.createDirectory(atPath: "/run/munge", withIntermediateDirectories: true)
        _ = try Tool.run("/bin/chown", ["munge:munge", "/run/munge"])
        let r = try daemonize("/usr/sbin/runuser", ["-u", "munge", "--", "/usr/sbin/munged"])
        guard r.status == 0 else { throw SlurmSetupFailure("munged did not start: \(r.stderr)") }
        startedMunge = true
    }

    /// Starts a daemon that forks into the background and waits (at most 60 s) for its foreground
    /// part to exit. Spawned and reaped here with posix_spawn and waitpid, its output in a file:
    /// munged keeps its inherited stderr open (a pipe of ours would never reach EOF), and Foundation's
    /// Process left `runuser` unreaped, a zombie it still reported as running. The file's text is the
    /// result's stderr.
    func daemonize(_ executable: String, _ args: [String]) throws -> RunResult {
        let output = root + "/logs/" + URL(fileURLWithPath: executable).lastPathComponent + ".out"
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        // nothing else of ours is inherited (a pipe another test reads must reach EOF)
        let open = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []).compactMap { Int32($0) }
        for fd in open where fd > 2 { posix_spawn_file_actions_addclose(&actions, fd) }
        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + args).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, executable, &actions, nil, argv, environ)
        guard rc == 0 else { throw SlurmSetupFailure("\(executable) could not be started: \(String(cString: strerror(rc)))") }
        var status: Int32 = 0
        let end = Date().addingTimeInterval(60)
        while waitpid(pid, &status, WNOHANG) == 0 {
            guard Date() < end else {
                kill(pid, SIGKILL); _ = waitpid(pid, &status, 0)
                throw SlurmSetupFailure("\(executable) did not return within 60 s: \(log("slurmctld")) \(log("slurmd"))")
            }
            usleep(50_000)
        }
        let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        let exit: Int32 = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return RunResult(status: exit, stdout: "", stderr: text)
    }

    /// A Slurm client command against this cluster.
    func run(_ tool: String, _ args: [String], timeout: TimeInterval = 120) throws -> RunResult {
        try Tool.run(tool, args, environment: ["SLURM_CONF": conf], timeout: timeout)
    }

    func log(_ daemon: String) -> String { (try? String(contentsOfFile: "\(root)/\(daemon).log", encoding: .utf8)) ?? "" }

    /// Stops the daemons by pid (munged only when started here).
    func stop() {
        var pids = ["slurmd", "slurmctld"].compactMap { name in
            (try? String(contentsOfFile: "\(root)/\(name).pid", encoding: .utf8)).flatMap { pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        }
        if startedMunge, let text = try? String(contentsOfFile: "/run/munge/munged.pid", encoding: .utf8),
           let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)) { pids.append(pid) }
        for pid in pids { kill(pid, SIGTERM) }
        for pid in pids {
            for _ in 0..<50 where kill(pid, 0) == 0 { usleep(100_000) }
            if kill(pid, 0) == 0 { kill(pid, SIGKILL) }
        }
    }
}

/// The recipes of `sbiwatch generate slurm-array` and `slurm-workers`, submitted with `sbatch --wait`
/// to a real local Slurm, on 12 files of which one is bad.
final class SlurmRecipeTests: SpoolTestCase {
    func testGeneratedRecipesRunOnARealSlurm() throws {
        if let reason = LocalSlurm.unavailable { throw XCTSkip(reason) }
        let slurm = try LocalSlurm(root: path("slurm"))
        defer { slurm.stop() }
        let files = try twelveFiles()
        let models = path("models")
        try "sird=\(TinyModels.sird)\n".write(toFile: models, atomically: true, encoding: .utf8)

        // a fixed file list: chunks of 5 files make 3 array tasks
        let list = path("list.txt"), arrayOut = path("array-out")
        try FileManager.default.createDirectory(atPath: arrayOut, withIntermediateDirectories: true)
        try (files.joined(separator: "\n") + "\n").write(toFile: list, atomically: true, encoding: .utf8)
        let (arrayRun, arraySeconds) = try runRecipe(["slurm-array", "--files", list, "--outbox", arrayOut, "--config", models,
                                                      "--samples", "20", "--chunk", "5"], tasks: 3, slurm)
        XCTAssertEqual(arrayRun.status, 65, "sbatch --wait: the worst task's status (the bad file's 65): \(arrayRun.stderr) \(logs())")
        assertOutputs(arrayOut, goodStems: (0..<11).map { "region-\($0)" }, badStem: "broken")

        // three workers drain one inbox holding the same 12 files
        for f in files { try FileManager.default.copyItem(atPath: f, toPath: inbox + "/" + URL(fileURLWithPath: f).lastPathComponent) }
        let (workersRun, workersSeconds) = try runRecipe(["slurm-workers", "--inbox", inbox, "--outbox", outbox, "--config", models,
                                                          "--samples", "20", "--workers", "3"], tasks: 3, slurm)
        XCTAssertEqual(workersRun.status, 65, "sbatch --wait: the worst worker's status (65: one file failed): \(workersRun.stderr) \(logs())")
        assertOutputs(outbox, goodStems: (0..<11).map { "region-\($0)" }, badStem: "broken")
        XCTAssertEqual(names(state + "/done").count, 11)
        XCTAssertEqual(names(state + "/failed"), ["broken.nc"])
        XCTAssertEqual(claimed(), [])
        XCTAssertEqual(names(inbox), [])
        print("slurm recipes on 12 files (20 samples each): slurm-array \(String(format: "%.1f", arraySeconds)) s, slurm-workers (3) \(String(format: "%.1f", workersSeconds)) s, each including sbatch --wait's polling")
    }

    /// 11 simulated files and one that is not NetCDF, in a folder of their own.
    func twelveFiles() throws -> [String] {
        var files = try (0..<11).map { try staged("region-\($0).nc", seed: 300 + $0) }
        let bad = path("staging/broken.nc")
        FileManager.default.createFile(atPath: bad, contents: Data("this is not NetCDF\n".utf8))
        files.append(bad)
        return files
    }

    /// Generates a recipe (its log files and working folder set by sbatch options), checks its
    /// array size, submits it with `sbatch --wait` and times it.
    func runRecipe(_ args: [String], tasks: Int, _ slurm: LocalSlurm) throws -> (RunResult, Double) {
        let script = try generate(args + ["--", "--output=\(path("slurm/logs"))/\(args[0])-%A_%a.log", "--chdir=\(path("."))"])
        XCTAssert(script.contains("#SBATCH --array=0-\(tasks - 1)\n"), script)
        let start = Date()
        let result = try submit(script, slurm)
        return (result, Date().timeIntervalSince(start))
    }

    func generate(_ args: [String]) throws -> String {
        let r = try CLI.run(["generate"] + args)
        XCTAssertEqual(r.status, 0, r.stderr)
        return r.stdout
    }

    func submit(_ script: String, _ slurm: LocalSlurm) throws -> RunResult {
        let file = path("job-\(UUID().uuidString.prefix(6)).sh")
        try script.write(toFile: file, atomically: true, encoding: .utf8)
        // a job that never leaves the queue fails the test after 10 minutes, with the daemons' logs
        do { return try slurm.run("/usr/bin/sbatch", ["--wait", file], timeout: 600) } catch let timeout as ChildTimeout {
            _ = try? slurm.run("/usr/bin/scancel", ["--full", "-u", "root"])
            throw ChildTimeout(command: timeout.command, seconds: timeout.seconds,
                               stderr: timeout.stderr + ((try? slurm.run("/usr/bin/squeue", ["-a"]))?.stdout ?? "") + slurm.log("slurmctld") + slurm.log("slurmd"))
        }
    }

    func logs() -> String {
        let dir = path("slurm/logs")
        return names(dir).map { "\($0): " + ((try? String(contentsOfFile: dir + "/" + $0, encoding: .utf8)) ?? "") }.joined(separator: "\n")
    }

    /// Each good stem's three outputs and the bad one's error report, nothing else (no temporary file).
    func assertOutputs(_ outbox: String, goodStems: [String], badStem: String) {
        let expected = goodStems.flatMap { [$0 + ".report.html", $0 + ".report.json", $0 + ".samples.nc"] } + [badStem + ".error.json"]
        XCTAssertEqual(names(outbox), expected.sorted(), logs())
        XCTAssertEqual(hidden(outbox), [])
    }
}
