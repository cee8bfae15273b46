import Foundation
import Testing

@testable import KeyAssign

/// `Base64Strict` is the one base64 decoder of replies, listings and signatures, fed whole (a
/// signature) or in runs between escapes (a listing's 70 MB text): both must decode exactly the
/// canonical encodings, to the same bytes, wherever the runs break.
@Suite struct SignatureBase64Tests {
    /// The text fed in runs of the given lengths (cycled), as `SignatureCheck` feeds it.
    private func decode(_ text: [UInt8], runs: [Int]) -> [UInt8]? {
        var decoder = Base64Strict(capacity: text.count / 4 * 3 + 3)
        text.withUnsafeBufferPointer { all in
            var at = 0
            var next = 0
            while at < all.count {
                let count = min(runs[next % runs.count], all.count - at)
                decoder.feed(UnsafeBufferPointer(rebasing: all[at..<(at + count)]))
                at += count
                next += 1
            }
        }
        return decoder.finish().map { Array($0.buffer) }
    }

    @Test("canonical text decodes to its bytes, whole or in runs of any length")
    func canonical() {
        var generator = SystemRandomNumberGenerator()
        for length in Array(0...40) + [255, 256, 257, 1000] {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let text = Array(Data(bytes).base64EncodedString().utf8)
            #expect(Base64Strict.decode(text) == bytes, "whole, \(length) bytes")
            for runs in [[1], [2], [3], [5], [63, 1], [1, 64, 2], [7, 1, 1]] {
                #expect(decode(text, runs: runs) == bytes, "\(length) bytes in runs of \(runs)")
            }
        }
    }

    @Test("every one-letter change is refused or is the canonical text of what it decodes to, in runs too")
    func onlyCanonical() {
        // 31 bytes: the text ends in "=".
        let text = Array(Data((0..<31).map { UInt8(truncatingIfNeeded: $0 &* 37) }).base64EncodedString().utf8)
        for at in text.indices {
            for replacement in Array("AB+/=Za9-_ \n".utf8) where replacement != text[at] {
                var changed = text
                changed[at] = replacement
                let whole = Base64Strict.decode(changed)
                if let whole {
                    #expect(
                        Array(Data(whole).base64EncodedString().utf8) == changed,
                        "\(String(decoding: changed, as: UTF8.self))")
                }
                for runs in [[1], [3], [64, 1]] {
                    #expect(
                        decode(changed, runs: runs) == whole,
                        "in runs of \(runs): \(String(decoding: changed, as: UTF8.self))")
                }
            }
        }
        // Stray bits before the padding, and text after it, are refused.
        #expect(Base64Strict.decode(Array("QR==".utf8)) == nil)
        #expect(Base64Strict.decode(Array("QQ==QQ==".utf8)) == nil)
        #expect(Base64Strict.decode(Array("QQ==".utf8)) == [0x41])
        #expect(Base64Strict.decode(Array("QQ".utf8)) == nil)
    }
}
