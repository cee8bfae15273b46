import Foundation

/// Which proxy, if any, carries the requests to the license server, decided once from the
/// server's URL and the environment, and given to libcurl explicitly (`CURLOPT_PROXY`), so
/// that libcurl never picks one up from the environment by itself:
///
/// - A loopback server never goes through a proxy, whatever the environment says: the
///   request would otherwise leave the machine, with the API key in it.
/// - Plain http (a loopback server, or any with `--allow-insecure-http`) never goes through a
///   proxy either: `http_proxy` is ignored, because a proxy for plain http reads every byte,
///   the `Authorization` header and the `api_key` field included.
/// - https follows curl's rules: `https_proxy` (or `HTTPS_PROXY`), else `all_proxy` (or
///   `ALL_PROXY`); `no_proxy` (or `NO_PROXY`) exempts hosts (`*`, names, `.suffix`, exact
///   addresses; libcurl also applies it, CIDR ranges included). Through a proxy, TLS runs end
///   to end inside a CONNECT tunnel: the proxy sees the host name, never the key.
public struct ProxyChoice: Sendable, Equatable {
    /// What CURLOPT_PROXY gets: "" means no proxy at all.
    let proxy: String
    /// What CURLOPT_NOPROXY gets: "*" when there is no proxy, else the environment's no_proxy.
    let noProxy: String
    /// For the log: the proxy without credentials, and why.
    public let description: String

    public var usesProxy: Bool { !proxy.isEmpty }

    /// The choice for a request to `url` (the server's) under `environment`.
    public static func decide(url: String, environment: [String: String] = ProcessInfo.processInfo.environment)
        -> ProxyChoice
    {
        let components = URLComponents(string: url)
        let scheme = components?.scheme?.lowercased() ?? ""
        let host = components?.host ?? ""
        func none(_ why: String) -> ProxyChoice { ProxyChoice(proxy: "", noProxy: "*", description: "none (\(why))") }
        if ServerEndpoint.isLoopback(host) {
            return none("a loopback server is never reached through a proxy")
        }
        guard scheme == "https" else {
            return none(
                "plain http never goes through a proxy: http_proxy is ignored, so that no proxy reads the API key in clear text"
            )
        }
        func variable(_ names: [String]) -> (name: String, value: String)? {
            for name in names {
                if let value = environment[name]?.trimmingCharacters(in: .whitespaces), !value.isEmpty {
                    return (name, value)
                }
            }
            return nil
        }
        guard let (name, value) = variable(["https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"]) else {
            return none("no https_proxy, HTTPS_PROXY, all_proxy or ALL_PROXY is set")
        }
        let exemptions = variable(["no_proxy", "NO_PROXY"])
        if let exemptions, exempts(exemptions.value, host: host) {
            return none("\(exemptions.name) exempts \(host)")
        }
        return ProxyChoice(
            proxy: value, noProxy: exemptions?.value ?? "",
            description:
                "\(withoutCredentials(value)) (from \(name); TLS to the server runs through it in a CONNECT tunnel)")
    }

    /// curl's no_proxy rules for a host name or an address: `*` exempts everything; each
    /// comma- or space-separated entry exempts that host and, for names, its subdomains (a
    /// leading dot is ignored).
    static func exempts(_ list: String, host rawHost: String) -> Bool {
        var host = rawHost.lowercased()
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if host.hasSuffix(".") { host.removeLast() }
        for rawEntry in list.split(whereSeparator: { $0 == "," || $0 == " " }) {
            var entry = rawEntry.trimmingCharacters(in: .whitespaces).lowercased()
            if entry == "*" { return true }
            if entry.hasPrefix("[") && entry.hasSuffix("]") { entry = String(entry.dropFirst().dropLast()) }
            while entry.hasPrefix(".") { entry.removeFirst() }
            if entry.hasSuffix(".") { entry.removeLast() }
            guard !entry.isEmpty else { continue }
            if host == entry || host.hasSuffix("." + entry) { return true }
        }
        return false
    }

    /// `http://user:secret@proxy:3128` → `http://***@proxy:3128`: the log never shows a
    /// proxy's password.
    static func withoutCredentials(_ proxy: String) -> String {
        let schemeEnd = proxy.range(of: "://")
        let authorityStart = schemeEnd?.upperBound ?? proxy.startIndex
        let rest = proxy[authorityStart...]
        let authorityEnd = rest.firstIndex(of: "/") ?? rest.endIndex
        guard let at = rest[..<authorityEnd].lastIndex(of: "@") else { return proxy }
        return String(proxy[..<authorityStart]) + "***" + String(proxy[at...])
    }
}
