import Foundation

/// What a hostile or broken server answers to `GET /api/v1/get-license-keys` in the listing
/// modes `echo-error`, `key-in-key-name`, `product` and `duplicate-member` (issue 19): each
/// is one attack a client must survive without leaking the API key, trusting the listing or
/// echoing control characters.
enum SandboxHostileListing {
    /// nil for the ordinary modes.
    static func reply(
        _ mode: SandboxConfiguration.ListingMode, request: SandboxRequest, apiKey: String,
        payload: [UInt8], replies: SignedReplyMaker
    ) throws -> SandboxReply? {
        switch mode {
        case .signed, .forged, .absent:
            return nil
        case .echoError:
            return whoopsPage(request: request, apiKey: apiKey)
        case .keyInKeyName:
            return .json(200, try replies.envelope(payload: payload, corruptSignature: false, listingKeyName: apiKey))
        case .product:
            return .json(
                200, try replies.envelope(payload: payload, corruptSignature: false, listingKeyName: "product"))
        case .duplicateMember:
            let name = "\\u001b[2J\\u0007\\nkeyassign: FORGED\\t"
            return .json(200, Array("{\"\(name)\":1,\"\(name)\":2}".utf8))
        }
    }

    /// Laravel's "Whoops" page in debug mode: the request's headers as received (the
    /// `Authorization: Bearer` API key first of all), then what a debug toolbar shows of them:
    /// the key base64-encoded (a Basic credential) and hex-dumped.
    static func whoopsPage(request: SandboxRequest, apiKey: String) -> SandboxReply {
        var text = "Whoops! Authorization: \(request.authorization ?? "")\n\(request.method) \(request.path)\n"
        for (name, value) in request.headers { text += "\(name): \(value)\n" }
        let key = Array(apiKey.utf8)
        text += "PHP_AUTH: Basic \(Data(Array("keyassign:".utf8) + key).base64EncodedString())\n"
        text +=
            "token (base64url): \(Data(key).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: ""))\n"
        text += "token (hex): \(key.map { String(format: "%02X", $0) }.joined())\n"
        return .plain(500, text)
    }
}
