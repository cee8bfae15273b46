import Foundation
import Testing

@testable import KeyAssign

/// Issue 18: a request keyassign gave up on cannot arrive late. Every transfer socket is closed
/// abortively (SO_LINGER 0, set in libcurl's socket-option callback), so the kernel discards
/// what it has not delivered instead of retransmitting it for minutes after the run timed the
/// request out, or died. Seen from the server: a connection keyassign gives up on ends with a
/// reset (RST), never an orderly FIN that would come after the retransmitted request.
@Suite struct TransportAbortiveCloseTests {
    /// Reads each request's head and never answers, then records how the client left:
    /// "reset" (RST) or "fin".
    static let silentServer = """
        import socket, sys, threading
        log = open(sys.argv[1], "a")
        lock = threading.Lock()
        def note(word):
            with lock:
                log.write(word + "\\n"); log.flush()
        def serve(conn):
            conn.settimeout(60)
            try:
                data = b""
                while b"\\r\\n\\r\\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        note("fin-before-request"); return
                    data += chunk
                while conn.recv(65536):
                    pass
                note("fin")
            except ConnectionResetError:
                note("reset")
            except socket.timeout:
                note("timeout")
            finally:
                conn.close()
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        print(server.getsockname()[1], flush=True)
        while True:
            conn, _ = server.accept()
            threading.Thread(target=serve, args=(conn,), daemon=True).start()
        """

    static func closes(_ path: String) -> [String] {
        ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    @Test func aTimedOutRequestsConnectionIsReset() throws {
        let bench = try RunnerBench(inventory: 3)
        let log = bench.dir.path + "/closes.txt"
        let server = try PythonServer(["-c", Self.silentServer, log])
        defer { server.stop() }
        var arguments = bench.runArguments([
            "--timeout", "1", "--max-attempts", "1", "--no-reconcile", "--max-wait", "0",
            "--concurrency", "3",
        ])
        arguments[arguments.firstIndex(of: bench.server.baseURL)!] = "http://127.0.0.1:\(server.port)"
        let result = try CLI.run(arguments, environment: ["KEYASSIGN_API_KEY": bench.server.apiKey])
        #expect(result.status != 0, "nothing can have been answered: \(result.stderr)")
        _ = RunnerLockTests.wait(seconds: 10) { Self.closes(log).count >= 3 }
        let seen = Self.closes(log)
        #expect(seen.count >= 3, "connections seen: \(seen)")
        #expect(seen.allSatisfy { $0 == "reset" }, "every connection keyassign gave up on ends with a reset: \(seen)")
    }

    @Test func aKilledRunsConnectionsAreReset() throws {
        let bench = try RunnerBench(inventory: 3)
        let log = bench.dir.path + "/closes.txt"
        let server = try PythonServer(["-c", Self.silentServer, log])
        defer { server.stop() }
        var arguments = bench.runArguments(["--timeout", "60", "--concurrency", "3"])
        arguments[arguments.firstIndex(of: bench.server.baseURL)!] = "http://127.0.0.1:\(server.port)"
        let run = try CLI.start(arguments, environment: ["KEYASSIGN_API_KEY": bench.server.apiKey])
        let sent = RunnerLockTests.wait(seconds: 30) {
            ((try? bench.count("SELECT count(*) FROM work WHERE state = 'in_flight'")) ?? 0) == 3
        }
        #expect(sent, "the run did not send its rows")
        usleep(300_000)
        kill(run.processIdentifier, SIGKILL)
        run.waitUntilExit()
        _ = RunnerLockTests.wait(seconds: 10) { Self.closes(log).count >= 3 }
        let seen = Self.closes(log)
        #expect(seen.count >= 3, "connections seen: \(seen)")
        #expect(seen.allSatisfy { $0 == "reset" }, "the kernel resets a killed run's connections: \(seen)")
    }
}
