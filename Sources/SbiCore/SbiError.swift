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
    /// What went wrong, naming the file, variable or attribute.
    public var message: String
    /// What the user can do about it.
    public var hint: String?

    public init(_ code: Code, _ message: String, hint: String? = nil) {
        self.code = code; self.message = message; self.hint = hint
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
        hint.map { "\(message)\n  what to do: \($0)" } ?? message
    }
}
