import Foundation

/// The `assign-license-key` URL derived from `--server`, with the rules that keep the API
/// key off the wire in clear text.
public struct ServerEndpoint: Sendable, Equatable {
    public let url: URL
    /// `GET /api/v1/get-license-keys` on the same server: the signed key listing.
    public let listingURL: URL
    /// The server as the user named it, for messages and the `runs` table (never has credentials).
    public let display: String

    public static let path = "/api/v1/assign-license-key"
    public static let listingPath = "/api/v1/get-license-keys"

    /// `base` is the server's base URL; one that already ends in `/api/v1`, or is the full
    /// endpoint URL (`…/api/v1/assign-license-key`, or the listing's `…/api/v1/get-license-keys`),
    /// with or without a trailing slash, is accepted too and means the same server: a URL
    /// copied from the server's documentation must not become `…/assign-license-key/api/v1/…`. Plain http is refused unless the host is loopback or
    /// `allowInsecureHTTP`, because the API key travels in every request.
    public init(base: String, allowInsecureHTTP: Bool) throws {
        guard var components = URLComponents(string: base.trimmingCharacters(in: .whitespaces)),
            let scheme = components.scheme?.lowercased(),
            let host = components.host, !host.isEmpty
        else {
            throw KeyAssignError(.config, "--server \(base): not a URL (expected e.g. https://licenses.example.com)")
        }
        guard scheme == "https" || scheme == "http" else {
            throw KeyAssignError(.config, "--server \(base): scheme \(scheme) is not supported (use https)")
        }
        if components.user != nil || components.password != nil {
            throw KeyAssignError(
                .config,
                "--server: credentials in the URL are not accepted (the API key comes from $KEYASSIGN_API_KEY or --api-key-file)"
            )
        }
        if components.query != nil || components.fragment != nil {
            throw KeyAssignError(.config, "--server \(base): a base URL has no query or fragment")
        }
        if scheme == "http" && !allowInsecureHTTP && !ServerEndpoint.isLoopback(host) {
            throw KeyAssignError(
                .config,
                "--server \(base): plain http would send the API key in clear text; use https, a loopback address, or --allow-insecure-http"
            )
        }
        var path = components.path
        while path.hasSuffix("/") { path.removeLast() }
        for suffix in [ServerEndpoint.path, ServerEndpoint.listingPath, "/api/v1"]
        where path.lowercased().hasSuffix(suffix) {
            path.removeLast(suffix.count)
            break
        }
        var listing = components
        components.path = path + ServerEndpoint.path
        listing.path = path + ServerEndpoint.listingPath
        guard let url = components.url, let listingURL = listing.url else {
            throw KeyAssignError(.config, "--server \(base): cannot build the request URL")
        }
        self.url = url
        self.listingURL = listingURL
        self.display = url.absoluteString
    }

    /// 127.0.0.0/8, ::1 and localhost: traffic that never leaves the machine.
    public static func isLoopback(_ rawHost: String) -> Bool {
        var host = rawHost.lowercased()
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if host == "localhost" || host.hasSuffix(".localhost") || host == "::1" || host == "0:0:0:0:0:0:0:1" {
            return true
        }
        let octets = host.split(separator: ".", omittingEmptySubsequences: false)
        guard octets.count == 4, octets[0] == "127" else { return false }
        return octets.allSatisfy { part in
            guard let value = Int(part), part.count <= 3 else { return false }
            return (0...255).contains(value)
        }
    }
}
