import Foundation

/// The echo-error fault: the 500 page a PHP/Laravel server in debug mode sends when it fails,
/// which echoes the request back — headers (the `Authorization: Bearer` API key among them),
/// the raw body (the form-encoded `api_key`), the decoded parameters, a stack trace, and a
/// JSON dump of it all for the page's script. One page carries the key in each form a client must never
/// store: as sent, HTML-escaped, form-encoded and JSON-escaped.
enum SandboxDebugPage {
    static func reply(for request: SandboxRequest, fields: AssignRequestFields) -> SandboxReply {
        var html = """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><title>Server Error</title></head>
            <body>
            <h1>500 | Server Error</h1>
            <p class="exception">ErrorException: Undefined array key "product_id" in \
            /var/www/app/Http/Controllers/Api/LicenseKeyController.php:88</p>
            <h2>Request</h2>
            <p>\(escapeHTML(request.method)) \(escapeHTML(request.path))</p>
            <h2>Headers</h2>
            <table>

            """
        for (name, value) in request.headers {
            html += "<tr><th>\(escapeHTML(name))</th><td>\(escapeHTML(value))</td></tr>\n"
        }
        // What debug toolbars add: the bearer token as a Basic credential (base64) and hex-dumped.
        if let token = request.authorization?.split(separator: " ", maxSplits: 1).last.map(String.init) {
            let bytes = Array(token.utf8)
            html +=
                "<tr><th>PHP_AUTH (base64)</th><td>Basic \(Data(Array("api:".utf8) + bytes).base64EncodedString())</td></tr>\n"
            html += "<tr><th>token (hex)</th><td>\(bytes.map { String(format: "%02x", $0) }.joined())</td></tr>\n"
        }
        html += "</table>\n<h2>Body</h2>\n<pre>\(escapeHTML(String(decoding: request.body, as: UTF8.self)))</pre>\n"
        html += "<h2>Parameters</h2>\n<table>\n"
        for (name, value) in fields.fields.sorted(by: { $0.key < $1.key }) {
            html += "<tr><th>\(escapeHTML(name))</th><td>\(escapeHTML(value))</td></tr>\n"
        }
        // Real debug pages are long (Ignition's run to hundreds of kilobytes); a stack trace
        // carries the JSON dump below past what a client keeps of an error page.
        html += "</table>\n<h2>Stack trace</h2>\n<ol>\n"
        for frame in 0..<24 {
            html +=
                "<li>#\(frame) /var/www/vendor/laravel/framework/src/Illuminate/Pipeline/Pipeline.php(\(180 + frame)): "
                + "Illuminate\\Pipeline\\Pipeline-&gt;Illuminate\\Pipeline\\{closure}(Object(Illuminate\\Http\\Request))</li>\n"
        }
        html += "</ol>\n<script>window.data = {\"headers\":{"
        html += request.headers.map { name, value in
            SignedReplyMaker.jsonString(name.lowercased()) + ":" + SignedReplyMaker.jsonString(value)
        }.joined(separator: ",")
        html += "},\"input\":{"
        html += fields.fields.sorted(by: { $0.key < $1.key }).map { name, value in
            SignedReplyMaker.jsonString(name) + ":" + SignedReplyMaker.jsonString(value)
        }.joined(separator: ",")
        html += "}};</script>\n</body></html>\n"
        return SandboxReply(
            status: 500, headers: [("Content-Type", "text/html; charset=UTF-8")], body: Array(html.utf8))
    }

    /// PHP's htmlspecialchars with ENT_QUOTES.
    static func escapeHTML(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#039;"
            default: out.append(character)
            }
        }
        return out
    }
}
