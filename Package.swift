// swift-tools-version: 6.0
import PackageDescription

// The numeric kernels are compiled for x86-64-v3 (AVX2 + FMA): 8-wide vectors double their speed.
// `sbiwatch` checks the CPU at start and refuses with a clear message on an older one.
#if arch(x86_64)
let kernelFlags: [String] = ["-O", "-enforce-exclusivity=unchecked", "-Xfrontend", "-target-cpu", "-Xfrontend", "haswell"]
// Attention's 16-wide twins are compiled for AVX-512 (skylake-avx512) and run only where the CPU has it.
let avx512Flags: [String] = ["-O", "-enforce-exclusivity=unchecked", "-Xfrontend", "-target-cpu", "-Xfrontend", "skylake-avx512"]
#else
let kernelFlags: [String] = ["-O", "-enforce-exclusivity=unchecked"]
let avx512Flags: [String] = ["-O", "-enforce-exclusivity=unchecked"]
#endif
// Numeric stages above the kernels are optimised in debug builds too, so tests run fast.
let optimized: [SwiftSetting] = [.swiftLanguageMode(.v5), .unsafeFlags(["-O"])]

let package = Package(
    name: "sbiwatch",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "sbiwatch", targets: ["sbiwatch"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
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
        // Attention's inner kernels in 16-wide vectors, chosen at run time on AVX-512 CPUs (same bits).
        .target(name: "SbiKernelsAVX512", swiftSettings: [.swiftLanguageMode(.v5), .unsafeFlags(avx512Flags)]),
        .target(name: "SbiCore", dependencies: ["CBLAS", "SbiKernelsAVX512"],
                swiftSettings: [.swiftLanguageMode(.v5), .unsafeFlags(kernelFlags)]),
        // NetCDF files through libnetcdf (every call serialised): the wrapper, no domain formats.
        .target(name: "SbiNetCDF", dependencies: ["SbiCore", "CNetCDF"], swiftSettings: [.swiftLanguageMode(.v5)]),
        // The method: variables, SDEs, the score model, condition masks, sampling and guidance.
        .target(name: "SbiModel", dependencies: ["SbiCore"], swiftSettings: optimized),
        // How far to trust a result: SBC rank tests, reference simulations and the out-of-distribution
        // check, posterior predictive checks, calibration.json, and the verdict of a file.
        .target(name: "SbiChecks", dependencies: ["SbiCore", "SbiModel"], swiftSettings: optimized),
        // Built-in simulators with priors, dependency graphs and reference posteriors, and the
        // realistic observation files written from them (`simulate --out`).
        .target(name: "SbiTasks", dependencies: ["SbiCore", "SbiModel", "SbiNetCDF"], swiftSettings: optimized),
        // Denoising score matching training, and training sets read from NetCDF.
        .target(name: "SbiTraining", dependencies: ["SbiCore", "SbiModel", "SbiNetCDF"], swiftSettings: optimized),
        // Evaluation beside training: the classifier two-sample tests, accuracy, query timing.
        .target(name: "SbiEval", dependencies: ["SbiCore", "SbiModel", "SbiTasks"], swiftSettings: optimized),
        // The pinned model archive (.sbim): gzip'd tar via libarchive, safetensors weights, SHA-256 pins;
        // and the one path from training to a loaded archive.
        .target(name: "SbiArchive", dependencies: [
            "SbiCore", "SbiModel", "SbiTraining", "SbiChecks", "CArchive", .product(name: "Crypto", package: "swift-crypto"),
        ], swiftSettings: [.swiftLanguageMode(.v5)]),
        // One observation file -> samples and reports, in named stages (the pipeline the CLI and the daemon share).
        .target(name: "SbiPipeline", dependencies: [
            "SbiCore", "SbiModel", "SbiChecks", "SbiArchive", "SbiNetCDF",
        ], swiftSettings: [.swiftLanguageMode(.v5)]),
        // Watch and cron modes: the spool, inotify, the instance lock, the job table, signals.
        .target(name: "SbiDaemon", dependencies: [
            "SbiCore", "SbiPipeline", .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: [.swiftLanguageMode(.v5)]),
        .executableTarget(name: "sbiwatch", dependencies: [
            "SbiDaemon", "SbiPipeline", "SbiCore", "SbiModel", "SbiChecks", "SbiTasks", "SbiTraining", "SbiArchive", "SbiEval", "SbiNetCDF",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: [.swiftLanguageMode(.v5)]),
        // The fuzz harness over the observation-file and archive readers (`make fuzz`; a replay tool otherwise).
        .executableTarget(name: "sbiwatch-fuzz", dependencies: ["SbiArchive", "SbiCore", "SbiModel", "SbiPipeline"],
                          path: "Tests/Fuzz/Harness", swiftSettings: [.swiftLanguageMode(.v5)]),
        .testTarget(name: "SbiCoreTests", dependencies: ["SbiCore", "SbiKernelsAVX512"],
                    swiftSettings: [.swiftLanguageMode(.v5)]),
        // Helpers shared by the test targets (temporary directories, repository paths).
        .target(name: "SbiTestSupport", path: "Tests/SbiTestSupport", swiftSettings: [.swiftLanguageMode(.v5)]),
        .testTarget(name: "SbiModelTests", dependencies: ["SbiTestSupport", "SbiCore", "SbiModel", "SbiChecks", "SbiTasks", "SbiTraining", "SbiArchive", "SbiEval", "SbiNetCDF", "CArchive"],
                    swiftSettings: [.swiftLanguageMode(.v5)]),
        // The daemon's job table and file probes (the child-process probe runs the real binary).
        .testTarget(name: "SbiDaemonTests", dependencies: ["sbiwatch", "SbiCore", "SbiDaemon", "SbiPipeline", "SbiNetCDF", "SbiTestSupport"],
                    swiftSettings: [.swiftLanguageMode(.v5)]),
        // Spawns the real binary (the dependency makes sure it is built first).
        .testTarget(name: "SbiwatchCLITests", dependencies: ["sbiwatch", "SbiTestSupport", "SbiArchive", "SbiCore", "SbiModel", "SbiTasks"],
                    swiftSettings: [.swiftLanguageMode(.v5)]),
    ]
)
