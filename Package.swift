// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "sbiwatch",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "sbiwatch", targets: ["sbiwatch"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        // C libraries from Debian, found through pkg-config.
        .systemLibrary(name: "CNetCDF", path: "Sources/CNetCDF", pkgConfig: "netcdf",
                       providers: [.apt(["libnetcdf-dev"])]),
        .systemLibrary(name: "CArchive", path: "Sources/CArchive", pkgConfig: "libarchive",
                       providers: [.apt(["libarchive-dev"])]),
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        // Numeric core: parameter arena, layers (forward + backward), transformer, Adam, RNG.
        .target(name: "SbiCore", dependencies: ["CBLAS"],
                swiftSettings: [.swiftLanguageMode(.v5), .unsafeFlags(["-O", "-enforce-exclusivity=unchecked"])]),
        .executableTarget(name: "sbiwatch", dependencies: [
            "SbiCore", "CNetCDF", "CArchive", "CBLAS",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: [.swiftLanguageMode(.v5)]),
        .testTarget(name: "SbiCoreTests", dependencies: ["SbiCore"],
                    swiftSettings: [.swiftLanguageMode(.v5)]),
    ]
)
