// One line per event on stderr: "TIME LEVEL EVENT key=value ..." for people, or one JSON object
// per line ({"time", "level", "event", and the metadata}) for log collectors.
import Foundation
import Logging

public struct LineLogHandler: LogHandler {
    public enum Format: String, Sendable, CaseIterable { case text, json }

    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    public var metadataProvider: Logger.MetadataProvider? = nil
    let format: Format
    static let lock = NSLock()

    public init(level: Logger.Level, format: Format) { self.logLevel = level; self.format = format }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var all = metadata
        for (k, v) in event.metadata ?? [:] { all[k] = v }
        let time = Self.timestamp()
        let line: String
        switch format {
        case .text:
            let fields = all.sorted { $0.key < $1.key }.map { "\($0.key)=\(Self.quoted("\($0.value)"))" }
            line = ([time, event.level.rawValue, event.message.description] + fields).joined(separator: " ")
        case .json:
            var object: [String: String] = ["time": time, "level": event.level.rawValue, "event": event.message.description]
            for (k, v) in all { object[k] = "\(v)" }
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
            line = String(decoding: data, as: UTF8.self)
        }
        Self.lock.lock()
        FileHandle.standardError.write(Data((line + "\n").utf8))
        Self.lock.unlock()
    }

    static func quoted(_ s: String) -> String {
        s.contains(where: { $0 == " " || $0 == "\"" || $0 == "=" }) ? "\"" + s.replacingOccurrences(of: "\"", with: "\\\"") + "\"" : s
    }

    static func timestamp() -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: Date())
    }
}
