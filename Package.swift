// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "keyassign",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "keyassign", targets: ["keyassign"]),
        .library(name: "KeyAssign", targets: ["KeyAssign"]),
        // The local license server and the demo, for anyone testing against KeyAssign the
        // way swift-nio ships NIOTestUtils: a separate product, so KeyAssign stays NIO-free.
        .library(name: "KeyAssignSandbox", targets: ["KeyAssignSandbox"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", exact: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", exact: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio", exact: "2.101.3"),
    ],
    targets: [
        // The system OpenSSL 3 (libssl-dev): RSA signature checks, the sandbox's signing, SHA-256.
        .systemLibrary(
            name: "COpenSSL",
            pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"])]
        ),
        // The system SQLite (libsqlite3-dev): the work table.
        .systemLibrary(
            name: "CSQLite",
            pkgConfig: "sqlite3",
            providers: [.apt(["libsqlite3-dev"])]
        ),
        // The system zlib (zlib1g-dev): kept listing entries are stored deflated (issue 21).
        .systemLibrary(
            name: "CZlib",
            pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        // libcurl: curl 7.88.1's own headers (include/curl, with their license) and the runtime
        // library by its soname, so a machine with libcurl4 but without libcurl4-openssl-dev
        // builds it. CCurl also holds what Swift cannot call on libcurl directly: typed wrappers
        // of the variadic setopt and getinfo, and the callbacks.
        .target(
            name: "CCurl",
            exclude: ["include/curl/COPYING", "include/curl/README.md"],
            linkerSettings: [.linkedLibrary(":libcurl.so.4")]
        ),
        .target(
            name: "KeyAssign",
            dependencies: [
                "CCurl",
                "COpenSSL",
                "CSQLite",
                "CZlib",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The local license server (`keyassign sandbox`), its reply signer, and `keyassign demo`:
        // what tests and demos need, kept out of the library the nightly job runs. Uses
        // KeyAssign's `package` declarations, never its internals through @testable.
        .target(
            name: "KeyAssignSandbox",
            dependencies: [
                "KeyAssign",
                "COpenSSL",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        .executableTarget(
            name: "keyassign",
            dependencies: [
                "KeyAssign",
                "KeyAssignSandbox",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // scripts/simulate: seeded scenarios of the run's state machine, queue, classifier and
        // verifiers against a simulated server, network and clock (KeyAssignSandbox/Simulation).
        .executableTarget(
            name: "keyassign-simulate",
            dependencies: ["KeyAssignSandbox"]
        ),
        // The measuring half of scripts/bench-verify.sh (a tool, not a test).
        .executableTarget(
            name: "BenchVerify",
            dependencies: ["KeyAssign", "KeyAssignSandbox", "COpenSSL"]
        ),
        .testTarget(
            name: "KeyAssignTests",
            dependencies: ["KeyAssign", "KeyAssignSandbox", "keyassign"],
            resources: [.copy("Fixtures")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
