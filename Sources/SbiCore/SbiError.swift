// Typed errors with a matchable code, a message that names what was wrong, and what to do.

/// Every failure sbiwatch reports to a user.
public struct SbiError: Error, CustomStringConvertible, Equatable, Sendable {
    /// Matchable category; each maps to a sysexits exit status.
    public enum Code: String, Codable, Sendable {
        case usage              // 64: bad command line
        case badInput           // 65: input data cannot be used
        case noInput            // 66: an input file does not exist or cannot be opened
        case unsupportedMachine // 69: this machine cannot run the build
        case internalError      // 70: a bug
        case cannotCreate       // 73: an output cannot be created
        case ioError            // 74: reading or writing failed
        case temporary          // 75: try again later
        case configuration      // 78: configuration (models, pins) is wrong
    }

    public var code: Code
    /// What went wrong, naming the variable or attribute (the file is the subject).
    public var message: String
    /// What the user can do about it.
    public var hint: String?
    /// The file (or other thing) the error is about, as the user knows it; `text` puts it first.
    /// Messages are built without it, so the one place that knows the name a user gave sets it.
    public var subject: String?

    public init(_ code: Code, _ message: String, hint: String? = nil, subject: String? = nil) {
        self.code = code; self.message = message; self.hint = hint; self.subject = subject
    }

    /// The message with its subject: "FILE: message".
    public var text: String { subject.map { "\($0): \(message)" } ?? message }

    /// The same error about `subject` (replacing the one it had).
    public func about(_ subject: String) -> SbiError {
        var e = self
        e.subject = subject
        return e
    }

    /// What to do when the error carries no hint of its own: every report says something actionable.
    public var advice: String {
        if let hint { return hint }
        switch code {
        case .usage: return "see `sbiwatch help` and `man sbiwatch` for the command's options"
        case .badInput: return "fix the file named in the message (see `man sbiwatch`, OBSERVATION FILES), or remove it"
        case .noInput: return "check that the file exists and that sbiwatch may read it"
        case .unsupportedMachine: return "run sbiwatch on an x86-64 CPU with AVX2 and FMA"
        case .internalError: return "report this with the file and the model; try another --seed meanwhile"
        case .cannotCreate: return "check that the output folder exists, is writable and has free space"
        case .ioError: return "check the disk (free space, errors) and try again"
        case .temporary: return "try again later; the file goes back to the inbox"
        case .configuration: return "fix the models file or --model value named in the message (man sbiwatch, FILES)"
        }
    }

    public var exitStatus: Int32 {
        switch code {
        case .usage: 64
        case .badInput: 65
        case .noInput: 66
        case .unsupportedMachine: 69
        case .internalError: 70
        case .cannotCreate: 73
        case .ioError: 74
        case .temporary: 75
        case .configuration: 78
        }
    }

    public var description: String {
        hint.map { "\(text)\n  what to do: \($0)" } ?? text
    }
}
