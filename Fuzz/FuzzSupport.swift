// Shared by every harness (scripts/fuzz compiles it into each).

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Ends the process on a broken property; libFuzzer records that as a crash with its input.
func fail(_ message: String) -> Never {
    // fd 2 directly: Swift 6 refuses the global `stderr` as shared mutable state.
    let line = Array(
        "\(CommandLine.arguments.first.map { String($0.split(separator: "/").last ?? "") } ?? "fuzz"): \(message)\n"
            .utf8)
    _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    abort()
}
