import Foundation

/// The ways a hostile server may echo an API key, as windows of text a test looks for in
/// every output and file: the key itself, base64 of it at each of the three alignments
/// (standard and URL-safe alphabets), and hex (either case). Windows are taken from the
/// middle of each encoding, where every character depends on the key alone.
struct SecretEchoes {
    let secret: String

    var windows: [String] {
        let bytes = Array(secret.utf8)
        var found = [secret]
        for alignment in 0..<3 {
            let encoded = Data(Array(repeating: UInt8(ascii: "A"), count: alignment) + bytes).base64EncodedString()
            let window = String(encoded.dropFirst(4).prefix(16))
            found.append(window)
            found.append(window.replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_"))
        }
        let hex = bytes.map { String(format: "%02x", $0) }.joined()
        found.append(String(hex.dropFirst(8).prefix(24)))
        return found
    }

    /// The first window `text` holds (hex and the key compared without case), or nil.
    func leak(in text: String) -> String? {
        windows.first {
            text.range(of: $0, options: .caseInsensitive) != nil
                && ($0 == secret || text.contains($0) || $0.allSatisfy(\.isHexDigit))
        }
    }

    /// Every `work.sqlite*` file of `directory`, as text.
    static func databaseFiles(in directory: String) throws -> [(String, String)] {
        try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasPrefix("work.sqlite") }.map {
            name in
            (name, String(decoding: try Data(contentsOf: URL(fileURLWithPath: directory + "/" + name)), as: UTF8.self))
        }
    }
}
