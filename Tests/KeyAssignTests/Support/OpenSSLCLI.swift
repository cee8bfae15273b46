import Foundation
import Synchronization
import Testing

@testable import KeyAssign
@testable import KeyAssignSandbox

/// Runs the system `openssl` CLI: an implementation independent of ours to check against.
enum OpenSSLCLI {
    @discardableResult
    static func run(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try RequiredTool.path("openssl", package: "openssl"))
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}
