import Foundation
import XCTest

/// A test case with a fresh temporary directory per test, removed afterwards.
open class TemporaryDirectoryTestCase: XCTestCase {
    public var dir: URL!

    override open func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("sbiwatch-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override open func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    /// A path inside the test's directory.
    public func path(_ name: String) -> String { dir.appendingPathComponent(name).path }
}

/// Paths of the source tree, found from this file.
public enum RepositoryPaths {
    /// The repository root (the folder holding Package.swift).
    public static var root: URL {
        var dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while !FileManager.default.fileExists(atPath: dir.appendingPathComponent("Package.swift").path) {
            dir = dir.deletingLastPathComponent()
        }
        return dir
    }

    /// The sbiwatch binary built next to the running test bundle (.build/<config>/sbiwatch).
    public static var builtBinary: URL {
        let testBinary = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var dir = testBinary.deletingLastPathComponent()
        while !FileManager.default.fileExists(atPath: dir.appendingPathComponent("sbiwatch").path) && dir.path != "/" {
            dir = dir.deletingLastPathComponent()
        }
        return dir.appendingPathComponent("sbiwatch")
    }
}
