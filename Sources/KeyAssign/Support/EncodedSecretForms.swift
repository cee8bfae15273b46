/// The secret's binary-to-text encodings, which a debug page or a proxy's error page may echo
/// instead of the secret itself (`Authorization: Basic base64(user:key)`, a hex dump of the
/// request): base64 in the standard and the URL-safe alphabet, at each of the three byte
/// alignments the secret can have inside a longer encoded text, padded or not, and hex in
/// either case.
///
/// Inside a longer base64 text the secret's first and last characters share bits with
/// whatever surrounds it, so what is matched is the run of characters that depend on the
/// secret's bytes alone (the "core"): the same whatever comes before or after, and whether
/// or not the text is padded. A `/` of the standard alphabet may also be written `\/` (the
/// text dumped as JSON by PHP). Matching compares literal bytes, linear in the text.
struct EncodedSecretForms: Sendable {
    private struct Form: Sendable {
        var bytes: [UInt8]
        /// Hex: letters in either case.
        var ignoresCase: Bool
    }

    /// Shorter cores would match ordinary text by chance; a secret that short is not worth a
    /// false alarm on every reply (and its plain spellings are still redacted).
    static let minimumLength = 8

    private let forms: [Form]
    private let firstBytes: [Bool]

    /// nil when the secret is too short to have an encoded form worth looking for.
    init?(secret: [UInt8]) {
        var forms: [Form] = []
        let hex = secret.flatMap { byte in [Self.hexDigits[Int(byte >> 4)], Self.hexDigits[Int(byte & 0xF)]] }
        if hex.count >= Self.minimumLength { forms.append(Form(bytes: hex, ignoresCase: true)) }
        for alignment in 0..<3 {
            let core = Self.base64Core(secret, alignment: alignment)
            guard core.count >= Self.minimumLength else { continue }
            forms.append(Form(bytes: core, ignoresCase: false))
            let urlSafe = core.map {
                $0 == UInt8(ascii: "+") ? UInt8(ascii: "-") : $0 == UInt8(ascii: "/") ? UInt8(ascii: "_") : $0
            }
            if urlSafe != core { forms.append(Form(bytes: urlSafe, ignoresCase: false)) }
        }
        guard !forms.isEmpty else { return nil }
        var first = [Bool](repeating: false, count: 256)
        for form in forms {
            let byte = form.bytes[0]
            first[Int(byte)] = true
            if form.ignoresCase { first[Int(Self.flipCase(byte))] = true }
        }
        self.forms = forms
        self.firstBytes = first
    }

    /// The base64 characters that depend only on the secret when it starts `alignment` bytes
    /// into a group of three: encode it behind that many zero bytes, then drop the characters
    /// that also hold bits of the bytes before or after it.
    static func base64Core(_ secret: [UInt8], alignment: Int) -> [UInt8] {
        // Padded: the slice below never reaches the padding.
        let encoded = Base64Strict.encode(Array(repeating: 0, count: alignment) + secret)
        let startBit = 8 * alignment
        let endBit = 8 * (alignment + secret.count)
        let first = (startBit + 5) / 6
        let end = endBit / 6
        guard first < end, end <= encoded.count else { return [] }
        return Array(encoded[first..<end])
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    private static func flipCase(_ byte: UInt8) -> UInt8 {
        (byte | 0x20) >= UInt8(ascii: "a") && (byte | 0x20) <= UInt8(ascii: "z") ? byte ^ 0x20 : byte
    }

    /// `text` with every encoded form replaced by `marker`, and how many there were.
    func redact(_ text: [UInt8], marker: [UInt8]) -> (bytes: [UInt8], occurrences: Int) {
        var out: [UInt8] = []
        var occurrences = 0
        var copiedUpTo = 0
        var position = 0
        text.withUnsafeBufferPointer { text in
            while position < text.count {
                guard firstBytes[Int(text[position])], let end = matchEnd(in: text, at: position) else {
                    position += 1
                    continue
                }
                if occurrences == 0 { out.reserveCapacity(text.count) }
                out.append(contentsOf: text[copiedUpTo..<position])
                out.append(contentsOf: marker)
                occurrences += 1
                position = end
                copiedUpTo = end
            }
            if occurrences > 0 { out.append(contentsOf: text[copiedUpTo..<text.count]) }
        }
        return occurrences == 0 ? (text, 0) : (out, occurrences)
    }

    func occurs(in text: UnsafeBufferPointer<UInt8>) -> Bool {
        for position in 0..<text.count where firstBytes[Int(text[position])] && matchEnd(in: text, at: position) != nil
        {
            return true
        }
        return false
    }

    /// The end of the longest form that starts at `position`.
    private func matchEnd(in text: UnsafeBufferPointer<UInt8>, at position: Int) -> Int? {
        var best: Int?
        for form in forms {
            var at = position
            var matched = true
            for byte in form.bytes {
                guard at < text.count else {
                    matched = false
                    break
                }
                let seen = text[at]
                if seen == byte || (form.ignoresCase && byte >= UInt8(ascii: "a") && seen | 0x20 == byte) {
                    at += 1
                } else if byte == UInt8(ascii: "/") && seen == UInt8(ascii: "\\") && at + 1 < text.count
                    && text[at + 1] == UInt8(ascii: "/")
                {
                    at += 2
                } else {
                    matched = false
                    break
                }
            }
            if matched { best = max(best ?? at, at) }
        }
        return best
    }
}
