import ArgumentParser
import Foundation
import Logging
import SbiCore
import SbiDaemon
import SbiPipeline

/// The default command: `sbiwatch --inbox DIR --outbox DIR [--once]`.
struct Watch: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Watch an inbox and turn every NetCDF file dropped into it into outputs in the outbox (the default command).",
        discussion: "Any number of workers, on any number of hosts, may share one inbox and state folder. Each claims files into its own STATE/processing/HOST.BOOT.PID/, writes their outputs atomically to the outbox, and moves each input to STATE/done/ or STATE/failed/ (with STEM.error.json); the claims of a worker that died are adopted by the others (see man sbiwatch, SPOOL). With --once: drain the inbox and exit 0 if every file succeeded, 65 if any failed, 75 if some were still being written. SIGTERM/SIGINT finish the current files (or return them to the inbox after --shutdown-grace); SIGHUP re-reads --config.")

    @Option(help: "The folder observation files arrive in.")
    var inbox: String

    @Option(help: "The folder outputs are written to.")
    var outbox: String

    @Flag(help: "Drain the inbox, then exit (for cron).")
    var once = false

    @OptionGroup var models: ModelOptions

    @Option(help: "State folder with processing/, done/, failed/ and the workers' leases (default: INBOX/.sbiwatch).")
    var state: String?

    @Option(help: "Files processed at once, each sampling on its share of the cores (default: the processor count, at most 4).")
    var jobs: Int?

    @Option(help: "Seconds a file must stay unchanged before it is taken.")
    var settle: Double = 2

    @Option(help: "Seconds between full rescans of the inbox (inotify events wake it sooner).")
    var rescan: Double = 30

    @Option(name: .customLong("max-attempts"), help: "Starts after which a file that keeps stopping sbiwatch goes to failed/.")
    var maxAttempts: Int = 3

    @Option(help: "Seconds between renewals of this worker's lease; other workers adopt its claims once the lease is 3 periods old (same host: as soon as the process is gone).")
    var lease: Double = 10

    @Option(name: .customLong("shutdown-grace"), help: "Seconds the current files may take to finish after SIGTERM before they go back to the inbox.")
    var shutdownGrace: Double = 30

    @OptionGroup var sampling: SamplingOptions

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: String = "info"

    @Option(name: .customLong("log-format"), help: "text or json (one object per line).")
    var logFormat: String = "text"

    @Flag(name: .customLong("no-inotify"), help: "Rely on rescans only (e.g. on filesystems without inotify).")
    var noInotify = false

    func validate() throws {
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical") }
        guard LineLogHandler.Format(rawValue: logFormat) != nil else { throw ValidationError("--log-format must be text or json") }
        if let jobs, !(1...64).contains(jobs) { throw ValidationError("--jobs must be between 1 and 64") }
        guard settle.isFinite, rescan.isFinite, shutdownGrace.isFinite, settle >= 0, rescan > 0, shutdownGrace >= 0, maxAttempts >= 1,
              lease.isFinite, (0.1...3600).contains(lease) else {
            throw ValidationError("--settle and --shutdown-grace must be finite and not negative, --rescan finite and positive, --lease between 0.1 and 3600 seconds, --max-attempts at least 1")
        }
    }

    func run() throws {
        let level = Logger.Level(rawValue: logLevel)!, format = LineLogHandler.Format(rawValue: logFormat)!
        LoggingSystem.bootstrap { _ in LineLogHandler(level: level, format: format) }
        let logger = Logger(label: "sbiwatch")
        let cores = ProcessInfo.processInfo.activeProcessorCount
        var options = DaemonOptions(inbox: inbox, outbox: outbox)
        options.state = state; options.once = once; options.settle = settle; options.rescan = rescan
        options.jobs = jobs ?? max(1, min(cores, 4))
        options.threadsPerJob = max(1, cores / options.jobs)
        options.maxAttempts = maxAttempts; options.shutdownGrace = shutdownGrace; options.leasePeriod = lease
        options.overrides = sampling.overrides; options.useInotify = !noInotify
        // unclaimed files are checked in a child process of this binary (`sbiwatch probe-netcdf`)
        options.probe = .childProcess(executable: URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path)
        let models = self.models
        let daemon = try Daemon(options: options, logger: logger, loadCatalog: { try models.catalog() })
        let summary = try daemon.run()
        var status: Int32 = 0
        if once {
            FileHandle.standardError.write(Data("sbiwatch: \(summary.line)\n".utf8))
            status = summary.exitStatus
        }
        // Abandoned files' workers are still running: leave at once, without running exit handlers
        // under them (their files are back in the inbox and their temporary outputs removed).
        if summary.abandoned > 0 { _exit(status) }
        if status != 0 { throw ExitCode(status) }
    }
}
