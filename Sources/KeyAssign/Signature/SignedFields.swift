/// The members every signed payload has, replies and listings alike: `code`, `message` and
/// `timestamp` (step 5 of docs/signatures.md), read from the payload object's members by one
/// set of rules. What is missing or of the wrong type is named in `problems`, in that order.
struct SignedFields {
    var code: Int?
    var message: String?
    var timestamp: Int64?
    var problems: [String] = []

    /// The longest code written as a string that is read: real codes have three digits, and
    /// this keeps any value far inside `Int`.
    static let maximumCodeDigits = 9

    /// `members`: the payload object's, from `JSONScanner.objectMembers` over `bytes`.
    init(members: [(name: String, value: Range<Int>)], in bytes: UnsafeBufferPointer<UInt8>) throws(JSONParseError) {
        var codeRange: Range<Int>?
        var messageRange: Range<Int>?
        var timestampRange: Range<Int>?
        for member in members {
            switch member.name {
            case "code": codeRange = member.value
            case "message": messageRange = member.value
            case "timestamp": timestampRange = member.value
            default: break
            }
        }
        switch try Self.code(codeRange, in: bytes) {
        case .success(let value): code = value
        case .failure(let problem): problems.append(problem.text)
        }
        if let range = messageRange, bytes[range.lowerBound] == UInt8(ascii: "\"") {
            var reader = JSONScanner(bytes, position: range.lowerBound)
            message = try reader.decodeString(try reader.scanString())
        } else {
            problems.append("message (string)")
        }
        if let range = timestampRange, let number = Self.number(range, in: bytes), number.isInteger {
            timestamp = Int64(number.text)
        }
        if timestamp == nil { problems.append("timestamp (integer)") }
    }

    struct CodeProblem: Error {
        let text: String
    }

    /// A code is a JSON integer or, as PHP servers write it, a string of ASCII digits
    /// (`"code":"800"`). Nothing looser: no sign, no blank, no fraction, no other digits.
    static func code(_ range: Range<Int>?, in bytes: UnsafeBufferPointer<UInt8>) throws(JSONParseError) -> Result<
        Int, CodeProblem
    > {
        guard let range else { return .failure(CodeProblem(text: "code (integer)")) }
        if let number = number(range, in: bytes) {
            guard number.isInteger, let wide = Int64(number.text), let code = Int(exactly: wide) else {
                return .failure(
                    CodeProblem(text: "code (integer; got \(ReplyVerifier.printable(number.text, limit: 24)))"))
            }
            return .success(code)
        }
        guard bytes[range.lowerBound] == UInt8(ascii: "\"") else {
            return .failure(CodeProblem(text: "code (integer or string of digits)"))
        }
        var reader = JSONScanner(bytes, position: range.lowerBound)
        let text = try reader.decodeString(try reader.scanString())
        let digits = text.utf8
        guard !digits.isEmpty else {
            return .failure(CodeProblem(text: "code (integer or string of digits; got an empty string)"))
        }
        guard digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
            return .failure(
                CodeProblem(
                    text: "code (integer or string of digits; got \"\(ReplyVerifier.printable(text, limit: 24))\")"))
        }
        guard digits.count <= maximumCodeDigits, let code = Int(text) else {
            return .failure(
                CodeProblem(
                    text:
                        "code (integer or string of digits; got a string of \(digits.count) digits, more than \(maximumCodeDigits))"
                ))
        }
        return .success(code)
    }

    /// The value at `range` when it is a number: its text, and whether it is written as an
    /// integer (no fraction, no exponent).
    private static func number(_ range: Range<Int>, in bytes: UnsafeBufferPointer<UInt8>) -> (
        text: String, isInteger: Bool
    )? {
        let first = bytes[range.lowerBound]
        guard first == UInt8(ascii: "-") || (first >= UInt8(ascii: "0") && first <= UInt8(ascii: "9")) else {
            return nil
        }
        var reader = JSONScanner(bytes, position: range.lowerBound)
        guard let scanned = try? reader.scanNumber() else { return nil }
        return (String(decoding: UnsafeBufferPointer(rebasing: bytes[scanned.range]), as: UTF8.self), scanned.isInteger)
    }
}
