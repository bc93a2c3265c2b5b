import Foundation
import SbiTestSupport
@testable import SbiArchive
@testable import SbiCore
@testable import SbiModel

/// The models shipped in fixtures/models, loaded once per test run with their pins from
/// fixtures/models/PINS.
enum ShippedModels {
    nonisolated(unsafe) static var cache: [String: LoadedModel] = [:]

    static func load(_ name: String) throws -> LoadedModel {
        if let m = cache[name] { return m }
        let folder = RepositoryPaths.root.appendingPathComponent("fixtures/models")
        let pins = try String(contentsOf: folder.appendingPathComponent("PINS"), encoding: .utf8)
        guard let line = pins.split(separator: "\n").first(where: { $0.hasPrefix(name + ".sbim@sha256:") }) else {
            throw SbiError(.configuration, "fixtures/models/PINS lists no \(name).sbim")
        }
        let m = try ModelArchive.load(folder.appendingPathComponent(String(line)).path)
        cache[name] = m
        return m
    }
}
