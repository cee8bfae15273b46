import Foundation
import KeyAssign

/// The sandbox's stand-in for a web application firewall in front of a license server: it
/// refuses requests whose owner name or email matches a pattern with an unsigned 403 HTML page,
/// as ModSecurity or a CDN does for `Robert'); DROP TABLE`, before the server sees them.
struct WAFRule: @unchecked Sendable {
    // NSRegularExpression is immutable once made, so sharing it between event loops is safe.
    private let expression: NSRegularExpression

    init(pattern: String) throws {
        do {
            expression = try NSRegularExpression(pattern: pattern, options: [.caseInsensitive])
        } catch {
            throw KeyAssignError(
                .usage, "waf-block \"\(pattern)\": not a regular expression (\(error.localizedDescription))")
        }
    }

    func blocks(ownerName: String?, email: String?) -> Bool {
        [ownerName ?? "", email ?? ""].contains { text in
            expression.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) != nil
        }
    }

    static let page = Array(
        """
        <html>
        <head><title>403 Forbidden</title></head>
        <body>
        <center><h1>403 Forbidden</h1></center>
        <hr><center>Request blocked by the web application firewall</center>
        </body>
        </html>

        """.utf8)
}
