import ArgumentParser
import Foundation
import SbiCore

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure this machine: BLAS peak and network throughput, in one run.")

    @Flag(help: "Print the figures as JSON (sorted keys).")
    var json = false

    @Option(help: "Seconds to spend measuring each configuration.")
    var seconds: Double = 3

    @Option(name: .customLong("only"), help: "Measure only the configurations whose name contains this text.")
    var only: String?

    @Option(help: "Worker threads for the network (default: the processor count).")
    var threads: Int?

    func validate() throws {
        guard seconds > 0 else { throw ValidationError("--seconds must be positive") }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
    }

    func run() throws {
        let report = ThroughputBench(seconds: seconds, threads: threads ?? BatchParallel.defaultThreads, only: only).run { line in
            FileHandle.standardError.write(Data((line + "\n").utf8))
        }
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.sortedKeys, .prettyPrinted]
            print(String(decoding: try enc.encode(report), as: UTF8.self))
        } else {
            print(report.text)
        }
    }
}
