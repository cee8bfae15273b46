import Foundation

@testable import KeyAssign
@testable import KeyAssignSandbox

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif
#if canImport(Glibc)
    import Glibc
#endif

/// A real HTTP client over loopback. One session per call, so that a connection the server
/// dropped on purpose is never reused by another request.
enum SandboxHTTP {
    static func formBody(_ fields: [(String, String)]) -> Data {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return Data(
            fields.map { name, value in
                "\(name)=\(value.addingPercentEncoding(withAllowedCharacters: allowed)!)"
            }.joined(separator: "&").utf8)
    }

    static func post(_ url: URL, form fields: [(String, String)], headers: [String: String] = [:]) async throws
        -> HTTPResult
    {
        var allHeaders = headers
        allHeaders["Content-Type"] = "application/x-www-form-urlencoded"
        return try await send(url, method: "POST", body: formBody(fields), headers: allHeaders)
    }

    static func send(_ url: URL, method: String, body: Data? = nil, headers: [String: String] = [:]) async throws
        -> HTTPResult
    {
        var request = URLRequest(url: url)
        request.httpMethod = method
        request.httpBody = body
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = 10
        let session = URLSession(configuration: configuration)
        defer { session.finishTasksAndInvalidate() }
        let (data, response) = try await session.data(for: request)
        guard let http = response as? HTTPURLResponse else { throw URLError(.badServerResponse) }
        var headerFields: [String: String] = [:]
        for (name, value) in http.allHeaderFields {
            if let name = name as? String, let value = value as? String { headerFields[name.lowercased()] = value }
        }
        return HTTPResult(status: http.statusCode, headers: headerFields, body: Array(data))
    }
}
