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
        for name in ["http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"] {
            env[name] = url
        }
        env["no_proxy"] = ""
        env["NO_PROXY"] = ""
        // The run, its end-of-run listing, and reconcile's listing: none through the proxy.
        let run = try CLI.run(bench.runArguments(["--max-attempts", "2"]), environment: env)
        #expect(run.status == 0, "\(run.stderr)")
        #expect(try bench.stateCounts() == ["assigned": 3, "rejected": 1])
        #expect(
            run.stderr.contains("proxy: none (a loopback server is never reached through a proxy)"), "\(run.stderr)")
        #expect(!run.stderr.contains("proxy-password"))
        let reconcile = try CLI.run(
            [
                "reconcile", "--server", bench.server.baseURL, "--public-key", bench.server.publicKeyPath,
                "--db", bench.db,
            ], environment: env)
        #expect(reconcile.status == 0, "\(reconcile.stderr)")
        let seen = try String(contentsOfFile: log, encoding: .utf8)
        #expect(seen.isEmpty, "the proxy received: \(seen)")
    }

    /// Plain http to a host that is not loopback (allowed by --allow-insecure-http) ignores
    /// http_proxy: a proxy would read the key in clear. The run goes direct (and finds no
    /// such host), the proxy gets nothing.
    @Test func plainHTTPIgnoresHTTPProxy() throws {
        let bench = try RunnerBench(inventory: 1)
        let log = bench.dir.path + "/proxy.log"
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let proxy = try Self.recordingProxy(log: log)
        defer { proxy.stop() }
        let url = "http://127.0.0.1:\(proxy.port)"
        let result = try CLI.run(
            [
                "run", "--server", "http://licenses.test", "--allow-insecure-http",
                "--public-key", bench.server.publicKeyPath, "--db", bench.db, "--timeout", "5", "--max-wait", "0",
            ],
            environment: [
                "KEYASSIGN_API_KEY": bench.server.apiKey, "http_proxy": url, "HTTP_PROXY": url,
                "all_proxy": url, "ALL_PROXY": url, "no_proxy": "", "NO_PROXY": "",
            ])
        #expect(result.status == 69, "\(result.stderr)")
        #expect(result.stderr.contains("proxy: none (plain http never goes through a proxy"), "\(result.stderr)")
        let seen = try String(contentsOfFile: log, encoding: .utf8)
        #expect(seen.isEmpty, "the proxy received: \(seen)")
        #expect(try bench.stateCounts() == ["pending": 1])
    }

    /// A CONNECT proxy that also plays the server at the tunnel's far end: it logs each
    /// request line, answers CONNECT with 200, then speaks TLS (a certificate for
    /// licenses.test) and passes the decrypted bytes to the sandbox's plain HTTP port.
    static func tunnellingProxy(log: String, certificate: String, key: String, upstream: Int) throws -> PythonServer {
        let script = """
            import socket, ssl, sys, threading
            log, cert, key, upstream = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(cert, key)
            def pipe(a, b):
                try:
                    while True:
                        d = a.recv(65536)
                        if not d: break
                        b.sendall(d)
                except OSError: pass
                finally:
                    try: b.shutdown(socket.SHUT_WR)
                    except OSError: pass
            def handle(c):
                f = c.makefile("rb")
                line = f.readline()
                with open(log, "ab") as out: out.write(line)
                while f.readline() not in (b"\\r\\n", b"\\n", b""): pass
                if not line.startswith(b"CONNECT "):
                    c.sendall(b"HTTP/1.1 502 Bad Gateway\\r\\nContent-Length: 0\\r\\nConnection: close\\r\\n\\r\\n"); c.close(); return
                c.sendall(b"HTTP/1.1 200 Connection established\\r\\n\\r\\n")
                try: t = ctx.wrap_socket(c, server_side=True)
                except OSError: return
                u = socket.create_connection(("127.0.0.1", upstream))
                threading.Thread(target=pipe, args=(u, t), daemon=True).start()
                pipe(t, u)
            s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", 0)); s.listen(64)
            print(s.getsockname()[1], flush=True)
            while True:
                c, _ = s.accept()
                threading.Thread(target=handle, args=(c,), daemon=True).start()
            """
        return try PythonServer(["-c", script, log, certificate, key, String(upstream)])
    }

    /// A CA and a certificate for licenses.test, made with the system's openssl.
    static func certificates(in dir: String) throws -> (ca: String, certificate: String, key: String) {
        let ext = dir + "/ext.cnf"
        try "subjectAltName=DNS:licenses.test\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
            .write(toFile: ext, atomically: true, encoding: .utf8)
        for arguments in [
            [
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", dir + "/ca.key", "-out", dir + "/ca.pem",
                "-days", "2", "-subj", "/CN=keyassign test proxy CA",
            ],
            [
                "req", "-newkey", "rsa:2048", "-nodes", "-keyout", dir + "/leaf.key", "-out", dir + "/leaf.csr",
                "-subj", "/CN=licenses.test",
            ],
            [
                "x509", "-req", "-in", dir + "/leaf.csr", "-CA", dir + "/ca.pem", "-CAkey", dir + "/ca.key",
                "-CAcreateserial",
                "-out", dir + "/leaf.pem", "-days", "2", "-extfile", ext,
            ],
        ] {
            let result = try OpenSSLCLI.run(arguments)
            #expect(result.status == 0, "openssl \(arguments.first ?? ""): \(result.output)")
        }
        return (dir + "/ca.pem", dir + "/leaf.pem", dir + "/leaf.key")
    }

    /// https to a host that is not loopback goes through HTTPS_PROXY in a CONNECT tunnel (TLS
    /// end to end), and the log names the proxy without its password; NO_PROXY exempts it.
    @Test func anHTTPSServerIsReachedThroughHTTPSProxyUnlessNoProxyExemptsIt() throws {
        let bench = try RunnerBench(inventory: 2, unknown: 1)
        let tls = try Self.certificates(in: bench.dir.path)
        let log = bench.dir.path + "/proxy.log"
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let proxy = try Self.tunnellingProxy(
            log: log, certificate: tls.certificate, key: tls.key, upstream: bench.server.port)
        defer { proxy.stop() }
        func run(_ env: [String: String]) throws -> CLI.Result {
            try CLI.run(
                [
                    "run", "--server", "https://licenses.test", "--ca-file", tls.ca, "--public-key",
                    bench.server.publicKeyPath,
                    "--db", bench.db, "--rate", "0", "--timeout", "5", "--max-wait", "0",
                ],
                environment: [
                    "KEYASSIGN_API_KEY": bench.server.apiKey, "no_proxy": "", "NO_PROXY": "",
                    "http_proxy": "", "all_proxy": "", "ALL_PROXY": "",
                ].merging(env) { $1 })
        }
        let exempt = try run([
            "HTTPS_PROXY": "http://alice:pw-secret@127.0.0.1:\(proxy.port)", "NO_PROXY": "example.org,.test",
        ])
        #expect(exempt.status == 69, "\(exempt.stderr)")
        #expect(exempt.stderr.contains("proxy: none (NO_PROXY exempts licenses.test)"), "\(exempt.stderr)")
        #expect(try String(contentsOfFile: log, encoding: .utf8).isEmpty)

        let through = try run(["HTTPS_PROXY": "http://alice:pw-secret@127.0.0.1:\(proxy.port)"])
        #expect(through.status == 0, "\(through.stderr)")
        #expect(try bench.stateCounts() == ["assigned": 2, "rejected": 1])
        #expect(
            through.stderr.contains("proxy: http://***@127.0.0.1:\(proxy.port) (from HTTPS_PROXY"), "\(through.stderr)")
        #expect(!through.stderr.contains("pw-secret"))
        let seen = try String(contentsOfFile: log, encoding: .utf8)
        #expect(seen.hasPrefix("CONNECT licenses.test:443 "), "\(seen)")
        #expect(!seen.contains(bench.server.apiKey))
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
        let insecure = ProxyChoice.decide(
            url: "http://licenses.lan/api", environment: ["http_proxy": proxy, "all_proxy": proxy])
        #expect(!insecure.usesProxy && insecure.description.contains("plain http never goes through a proxy"))
        for host in ["127.0.0.1", "localhost", "[::1]", "127.1.2.3"] {
            let loopback = ProxyChoice.decide(url: "https://\(host):8443/api", environment: ["HTTPS_PROXY": proxy])
            #expect(!loopback.usesProxy && loopback.proxy == "" && loopback.noProxy == "*", "\(host)")
        }
        // NO_PROXY exempts the host, its subdomains, or everything.
        for list in ["example.com", ".example.com", "other.org, licenses.example.com", "*"] {
            #expect(
                !ProxyChoice.decide(url: https, environment: ["HTTPS_PROXY": proxy, "NO_PROXY": list]).usesProxy,
                "\(list)")
        }
        #expect(ProxyChoice.decide(url: https, environment: ["HTTPS_PROXY": proxy, "no_proxy": "ample.com"]).usesProxy)
    }
}
