import Foundation

@testable import KeyAssign
@testable import KeyAssignSandbox

/// Builds reply envelopes the way the server does, with any part replaceable so a test can
/// break exactly one thing.
struct EnvelopeBuilder {
    var payload = #"{"code":800,"message":"License key assigned","timestamp":1708999933}"#
    /// The unsigned `response` copy; nil means the same JSON as `payload`.
    var response: String?
    var keyName = "global"
    var signer: ReplySigner = TestKeys.global
    /// Replaces `response_base64` (still signed unless `signature` is set).
    var responseBase64: String?
    /// Replaces the signature text as it appears in the envelope (already JSON-escaped).
    var signature: String?

    var signedText: String { responseBase64 ?? Data(payload.utf8).base64EncodedString() }

    func json() throws -> String {
        let signatureText = try signature ?? signer.signBase64(signedText)
        return
            #"{"response":\#(response ?? payload),"response_base64":"\#(signedText)","private_key_used":"\#(keyName)","signature":"\#(signatureText)"}"#
    }

    func bytes() throws -> [UInt8] { Array(try json().utf8) }
}
