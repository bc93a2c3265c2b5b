// The pinned models a run may use, by name. A reference is "[NAME=]PATH[@sha256:HEX]"; without a
// NAME the archive's file name without ".sbim" names it. A models file lists one reference per line
// ('#' starts a comment; relative paths are relative to the file), e.g. fixtures/models/PINS.
// Archives load once, on first use, and are shared afterwards.
import Foundation
import SbiArchive
import SbiCore

public struct ModelReference: Hashable, Sendable {
    public var name: String
    /// PATH or PATH@sha256:HEX, as ModelArchive.load takes it.
    public var reference: String

    public init(name: String, reference: String) { self.name = name; self.reference = reference }

    /// Parses "[NAME=]PATH[@sha256:HEX]"; a relative PATH is resolved against `folder` when given.
    public static func parse(_ text: String, relativeTo folder: String? = nil, context: String = "--model") throws -> ModelReference {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        var name: String? = nil
        var rest = trimmed
        if let eq = trimmed.firstIndex(of: "=") {
            name = trimmed[..<eq].trimmingCharacters(in: .whitespaces)
            rest = trimmed[trimmed.index(after: eq)...].trimmingCharacters(in: .whitespaces)
        }
        let path: String
        do { path = try ModelArchive.parseReference(rest).path } catch let e as SbiError {
            // a malformed pin in a models file is a configuration error, on the command line a usage error
            throw SbiError(folder == nil ? e.code : .configuration, "\(context) \(e.message)", hint: e.hint)
        }
        guard !path.isEmpty else { throw SbiError(.configuration, "\(context) \(text): no archive path", hint: "write [NAME=]PATH[@sha256:HEX]") }
        if let folder, !path.hasPrefix("/") { rest = folder + "/" + rest }
        let fileName = URL(fileURLWithPath: path).lastPathComponent
        let derived = fileName.hasSuffix(".sbim") ? String(fileName.dropLast(5)) : fileName
        let final = name ?? derived
        guard !final.isEmpty, final.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }) else {
            throw SbiError(.configuration, "\(context) \(text): the model name '\(final)' may hold only letters, digits, '-', '_' and '.'")
        }
        return ModelReference(name: final, reference: rest)
    }

    /// Reads a models file: one reference per line, '#' comments, blank lines ignored.
    public static func readFile(_ path: String) throws -> [ModelReference] {
        let data: Data
        do { data = try RegularFile.read(path, what: "the models file", limit: 1 << 20) } catch let e as SbiError {
            throw SbiError(.configuration, e.text, hint: e.hint)
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw SbiError(.configuration, "the models file \(path) is not UTF-8 text", hint: "write one [NAME=]ARCHIVE@sha256:HEX per line")
        }
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
        var refs: [ModelReference] = []
        // lines end in LF or CRLF (a file written on Windows; "\r\n" is one Character, a newline)
        for (n, raw) in text.split(omittingEmptySubsequences: false, whereSeparator: { $0.isNewline }).enumerated() {
            let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
            guard !line.trimmingCharacters(in: .whitespaces).isEmpty else { continue }
            refs.append(try parse(line, relativeTo: folder, context: "\(path):\(n + 1):"))
        }
        guard !refs.isEmpty else { throw SbiError(.configuration, "the models file \(path) lists no model", hint: "add a line NAME=PATH@sha256:HEX") }
        return refs
    }
}

/// Named models, loaded lazily and kept.
public final class ModelCatalog: @unchecked Sendable {
    public let references: [ModelReference]
    /// The models file the references came from (--config, or the one found on the search path).
    public let modelsFile: String?
    private var loaded: [String: LoadedModel] = [:]
    private let lock = NSLock()

    public init(_ references: [ModelReference], modelsFile: String? = nil) throws {
        self.modelsFile = modelsFile
        var seen = Set<String>()
        for r in references where !seen.insert(r.name).inserted {
            throw SbiError(.configuration, "two models are named '\(r.name)'", hint: "name them apart with NAME=PATH")
        }
        self.references = references
    }

    public var names: [String] { references.map(\.name) }

    /// The model a file asks for (`sbiwatch_model`), or the only configured one when it names none.
    /// Errors are about the file (the caller names it as their subject).
    public func reference(named requested: String?) throws -> ModelReference {
        let reference: ModelReference
        if let requested {
            guard let r = references.first(where: { $0.name == requested }) else {
                throw SbiError(.badInput, "the global attribute sbiwatch_model asks for model '\(requested)', which is not configured (configured: \(names.joined(separator: ", ")))",
                               hint: "set sbiwatch_model to one of those names, or configure the model with --model \(requested)=PATH@sha256:HEX")
            }
            reference = r
        } else {
            guard references.count == 1 else {
                throw SbiError(.badInput, "the file has no global attribute sbiwatch_model and \(references.count) models are configured (\(names.joined(separator: ", ")))",
                               hint: "add the global attribute sbiwatch_model naming one of them")
            }
            reference = references[0]
        }
        return reference
    }

    /// Loads every configured model now (so a bad pin fails at start, not at the first file).
    public func loadAll() throws { for r in references { _ = try load(r) } }

    /// The archive of a configured model, loaded once and then kept.
    public func load(_ r: ModelReference) throws -> LoadedModel {
        lock.lock(); defer { lock.unlock() }
        if let m = loaded[r.name] { return m }
        let m = try ModelArchive.load(r.reference)
        loaded[r.name] = m
        return m
    }
}
