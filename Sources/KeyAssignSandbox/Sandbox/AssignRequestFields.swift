import Foundation
import KeyAssign

/// The form fields of an assign request, from any of the body encodings the server accepts:
/// `application/x-www-form-urlencoded`, `multipart/form-data` and `application/json`.
/// Junk never throws: a body that cannot be read simply has no fields, which the server
/// answers like a request without a license key.
struct AssignRequestFields: Equatable {
    var fields: [String: String] = [:]

    subscript(name: String) -> String? { fields[name] }

    init(fields: [String: String]) {
        self.fields = fields
    }

    init(contentType: String?, body: [UInt8]) {
        let (mediaType, parameters) = Self.splitContentType(contentType ?? "")
        switch mediaType {
        case "multipart/form-data":
            if let boundary = parameters["boundary"], !boundary.isEmpty {
                fields = Self.parseMultipart(body, boundary: boundary)
            }
        case "application/json":
            fields = Self.parseJSON(body)
        default:
            // PHP reads urlencoded bodies; clients that omit the type send that too.
            fields = Self.parseURLEncoded(body)
        }
    }

    static func splitContentType(_ header: String) -> (String, [String: String]) {
        let parts = header.split(separator: ";")
        let mediaType = parts.first.map { $0.trimmingWhitespace().lowercased() } ?? ""
        var parameters: [String: String] = [:]
        for part in parts.dropFirst() {
            guard let equals = part.firstIndex(of: "=") else { continue }
            let name = part[..<equals].trimmingWhitespace().lowercased()
            var value = part[part.index(after: equals)...].trimmingWhitespace()
            if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") {
                value = String(value.dropFirst().dropLast())
            }
            parameters[name] = value
        }
        return (mediaType, parameters)
    }

    static func parseURLEncoded(_ body: [UInt8]) -> [String: String] {
        var fields: [String: String] = [:]
        for pair in body.split(separator: UInt8(ascii: "&")) {
            let nameAndValue = pair.split(separator: UInt8(ascii: "="), maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = percentDecode(nameAndValue[0]), !name.isEmpty else { continue }
            let value = nameAndValue.count > 1 ? percentDecode(nameAndValue[1]) : ""
            // First occurrence wins, like a strict reader; duplicates are junk anyway.
            if fields[name] == nil, let value { fields[name] = value }
        }
        return fields
    }

    static func percentDecode(_ bytes: ArraySlice<UInt8>) -> String? {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var index = bytes.startIndex
        while index < bytes.endIndex {
            let byte = bytes[index]
            if byte == UInt8(ascii: "+") {
                out.append(UInt8(ascii: " "))
            } else if byte == UInt8(ascii: "%"), index + 2 < bytes.endIndex,
                let high = hexValue(bytes[index + 1]), let low = hexValue(bytes[index + 2])
            {
                out.append(high << 4 | low)
                index += 2
            } else {
                out.append(byte)
            }
            index += 1
        }
        return String(validating: out, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    static func parseJSON(_ body: [UInt8]) -> [String: String] {
        guard let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] else { return [:] }
        var fields: [String: String] = [:]
        for (name, value) in object {
            if let text = value as? String { fields[name] = text }
        }
        return fields
    }

    /// Parts are separated by `--boundary`; each has headers, a blank line, then its value.
    static func parseMultipart(_ body: [UInt8], boundary: String) -> [String: String] {
        let delimiter = Array(("--" + boundary).utf8)
        var fields: [String: String] = [:]
        var cursor = body.startIndex
        guard let first = find(delimiter, in: body, from: cursor) else { return [:] }
        cursor = first + delimiter.count
        while cursor < body.endIndex {
            // "--" after a delimiter ends the body.
            if body[cursor...].starts(with: [UInt8(ascii: "-"), UInt8(ascii: "-")]) { break }
            guard let next = find(delimiter, in: body, from: cursor) else { break }
            var part = body[cursor..<next]
            part = part.drop { $0 == UInt8(ascii: "\r") || $0 == UInt8(ascii: "\n") }
            if part.last == UInt8(ascii: "\n") { part = part.dropLast() }
            if part.last == UInt8(ascii: "\r") { part = part.dropLast() }
            if let (name, value) = parsePart(part), fields[name] == nil {
                fields[name] = value
            }
            cursor = next + delimiter.count
        }
        return fields
    }

    private static func parsePart(_ part: ArraySlice<UInt8>) -> (String, String)? {
        let separator: [UInt8] = Array("\r\n\r\n".utf8)
        let headerEnd: Int
        let valueStart: Int
        if let crlf = find(separator, in: part, from: part.startIndex) {
            headerEnd = crlf
            valueStart = crlf + separator.count
        } else if let lf = find(Array("\n\n".utf8), in: part, from: part.startIndex) {
            headerEnd = lf
            valueStart = lf + 2
        } else {
            return nil
        }
        guard let headers = String(validating: part[part.startIndex..<headerEnd], as: UTF8.self),
            let value = String(validating: part[valueStart...], as: UTF8.self)
        else { return nil }
        for line in headers.split(whereSeparator: \.isNewline) {
            let header = line.trimmingWhitespace()
            guard header.lowercased().hasPrefix("content-disposition:") else { continue }
            let (_, parameters) = splitContentType(String(header.dropFirst("content-disposition:".count)))
            if let name = parameters["name"] { return (name, value) }
        }
        return nil
    }

    private static func find(_ needle: [UInt8], in haystack: ArraySlice<UInt8>, from start: Int) -> Int? {
        guard !needle.isEmpty, haystack.endIndex - start >= needle.count else { return nil }
        var index = start
        let last = haystack.endIndex - needle.count
        while index <= last {
            if haystack[index] == needle[0], haystack[index..<index + needle.count].elementsEqual(needle) {
                return index
            }
            index += 1
        }
        return nil
    }

    private static func find(_ needle: [UInt8], in haystack: [UInt8], from start: Int) -> Int? {
        find(needle, in: haystack[...], from: start)
    }
}
