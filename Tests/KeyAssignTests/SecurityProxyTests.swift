import Foundation
import Testing
@testable import KeyAssign
@testable import KeyAssignSandbox

/// Issue 19, item 2 of "Measured": with proxy variables set, a request to a loopback server
/// (plain http) went through the proxy, `Authorization: Bearer` and `api_key=` in clear. A
/// real proxy on loopback records every connection it gets; it must get none.
@Suite struct SecurityProxyTests {
    /// An HTTP proxy (forward and CONNECT alike) that writes the first line of every request it
    /// receives to the file `argv[1]` and answers 502.
    static func recordingProxy(log: String) throws -> PythonServer {
        let script = """
            import socketserver, sys
            log = sys.argv[1]
            class H(socketserver.StreamRequestHandler):
                def handle(self):
                    line = self.rfile.readline()
                    with open(log, "ab") as f:
                        f.write(line)
                    self.wfile.write(b"HTTP/1.1 502 Bad Gateway\\r\\nContent-Length: 0\\r\\nConnection: close\\r\\n\\r\\n")
            class S(socketserver.ThreadingTCPServer):
                allow_reuse_address = True
                daemon_threads = True
            server = S(("127.0.0.1", 0), H)
            print(server.server_address[1], flush=True)
            server.serve_forever()
            """
        return try PythonServer(["-c", script, log])
    }

    @Test func aLoopbackServerIsNeverReachedThroughAProxy() throws {
        let bench = try RunnerBench(inventory: 3, unknown: 1)
        let log = bench.dir.path + "/proxy.log"
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let proxy = try Self.recordingProxy(log: log)
        defer { proxy.stop() }
        let url = "http://user:proxy-password@127.0.0.1:\(proxy.port)"
        var env = ["KEYASSIGN_API_KEY": bench.server.apiKey]
        for name in ["http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"] { env[name] = url }
        env["no_proxy"] = ""
        env["NO_PROXY"] = ""
        // The run, its end-of-run listing, and reconcile's listing: none through the proxy.
        let run = try CLI.run(bench.runArguments(["--max-attempts", "2"]), environment: env)
        #expect(run.status == 0, "\(run.stderr)")
        #expect(try bench.stateCounts() == ["assigned": 3, "rejected": 1])
        #expect(run.stderr.contains("proxy: none (a loopback server is never reached through a proxy)"), "\(run.stderr)")
        #expect(!run.stderr.contains("proxy-password"))
        let reconcile = try CLI.run(["reconcile", "--server", bench.server.baseURL, "--public-key", bench.server.publicKeyPath,
                                     "--db", bench.db], environment: env)
        #expect(reconcile.status == 0, "\(reconcile.stderr)")
        let seen = try String(contentsOfFile: log, encoding: .utf8)
        #expect(seen.isEmpty, "the proxy received: \(seen)")
    }

    @Test func theProxyDecisionFollowsCurlForHTTPSOnly() {
        let proxy = "http://alice:s3cret@proxy.corp:3128"
        let https = "https://licenses.example.com/api/v1/assign-license-key"
        // https: HTTPS_PROXY (either case), else ALL_PROXY; the log never shows the password.
        let chosen = ProxyChoice.decide(url: https, environment: ["HTTPS_PROXY": proxy])
        #expect(chosen.usesProxy && chosen.proxy == proxy)
        #expect(chosen.description.hasPrefix("http://***@proxy.corp:3128 (from HTTPS_PROXY"))
        #expect(ProxyChoice.decide(url: https, environment: ["all_proxy": proxy]).usesProxy)
        // http_proxy never applies to https, nor to plain http (loopback or not).
        #expect(!ProxyChoice.decide(url: https, environment: ["http_proxy": proxy]).usesProxy)
        let insecure = ProxyChoice.decide(url: "http://licenses.lan/api", environment: ["http_proxy": proxy, "all_proxy": proxy])
        #expect(!insecure.usesProxy && insecure.description.contains("plain http never goes through a proxy"))
        for host in ["127.0.0.1", "localhost", "[::1]", "127.1.2.3"] {
            let loopback = ProxyChoice.decide(url: "https://\(host):8443/api", environment: ["HTTPS_PROXY": proxy])
            #expect(!loopback.usesProxy && loopback.proxy == "" && loopback.noProxy == "*", "\(host)")
        }
        // NO_PROXY exempts the host, its subdomains, or everything.
        for list in ["example.com", ".example.com", "other.org, licenses.example.com", "*"] {
            #expect(!ProxyChoice.decide(url: https, environment: ["HTTPS_PROXY": proxy, "NO_PROXY": list]).usesProxy, "\(list)")
        }
        #expect(ProxyChoice.decide(url: https, environment: ["HTTPS_PROXY": proxy, "no_proxy": "ample.com"]).usesProxy)
    }
}
