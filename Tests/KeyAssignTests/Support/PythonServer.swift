import Foundation
import Synchronization
import Testing

@testable import KeyAssign
@testable import KeyAssignSandbox

/// A python3 server on loopback that prints the port it listens on as its first line.
final class PythonServer {
    let process = Process()
    let port: Int

    init(_ arguments: [String]) throws {
        process.executableURL = URL(fileURLWithPath: try RequiredTool.path("python3", package: "python3"))
        process.arguments = arguments
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let line = String(decoding: out.fileHandleForReading.availableDataUntilNewline(), as: UTF8.self)
        guard let port = Int(line.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            kill(process.processIdentifier, SIGKILL)
            throw KeyAssignError(.ioError, "python3 \(arguments.first ?? ""): printed no port: \(line)")
        }
        self.port = port
    }

    /// SIGKILL: the test process may ignore SIGTERM (the runner's handlers), and children
    /// inherit ignored signals.
    func stop() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// `Fixtures/tls/tls-proxy.py`: real TLS (a certificate from the test CA) in front of the sandbox.
    static func tlsProxy(upstreamPort: Int, listenHost: String = "127.0.0.1") throws -> PythonServer {
        try PythonServer([CLI.fixture("tls/tls-proxy.py"), String(upstreamPort), listenHost])
    }

    /// HTTP/1.1 that answers every POST with a 200 and a body of `size` bytes.
    static func fixedReply(size: Int) throws -> PythonServer {
        let script = """
            import http.server, sys
            body = b"x" * int(sys.argv[1])
            class H(http.server.BaseHTTPRequestHandler):
                protocol_version = "HTTP/1.1"
                def do_POST(self):
                    self.rfile.read(int(self.headers.get("Content-Length", "0")))
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                def log_message(self, *args): pass
            server = http.server.HTTPServer(("127.0.0.1", 0), H)
            print(server.server_address[1], flush=True)
            server.serve_forever()
            """
        return try PythonServer(["-c", script, String(size)])
    }
}

extension FileHandle {
    /// Reads one line (a child's first output), byte by byte: no buffering past it.
    fileprivate func availableDataUntilNewline() -> Data {
        var data = Data()
        while let byte = try? read(upToCount: 1), let first = byte.first {
            if first == UInt8(ascii: "\n") { break }
            data.append(first)
        }
        return data
    }
}
