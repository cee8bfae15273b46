import Foundation
import KeyAssign

/// `keyassign sandbox --preassigned FILE`: keys sold before the sandbox started, one
/// `key,owner_name,email` per line (RFC 4180 quoting; an optional header line starting with
/// `license_key` or `key`; empty name or email fields mean none).
public enum PreassignedFile {
    public static func read(_ path: String) throws -> [SandboxConfiguration.Preassigned] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw KeyAssignError(.dataError, "--preassigned \(path): cannot read the file")
        }
        let text = String(decoding: data, as: UTF8.self)
        var result: [SandboxConfiguration.Preassigned] = []
        for (offset, rawLine) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated()
        {
            let line = rawLine.trimmingWhitespace()
            if line.isEmpty || line.hasPrefix("#") { continue }
            let fields = try split(line, path: path, line: offset + 1)
            let key = fields[0].trimmingWhitespace()
            if offset == 0 && ["license_key", "key"].contains(key.lowercased()) { continue }
            guard !key.isEmpty, fields.count <= 3 else {
                throw KeyAssignError(
                    .dataError, "--preassigned \(path) line \(offset + 1): expected key,owner_name,email")
            }
            func optional(_ index: Int) -> String? {
                guard index < fields.count else { return nil }
                let value = fields[index].trimmingWhitespace()
                return value.isEmpty ? nil : value
            }
            result.append(.init(licenseKey: key, ownerName: optional(1), email: optional(2)))
        }
        return result
    }

    private static func split(_ line: String, path: String, line number: Int) throws -> [String] {
        var fields: [String] = []
        var field = ""
        var quoted = false
        var iterator = Array(line).makeIterator()
        var atStart = true
        while let character = iterator.next() {
            if quoted {
                if character == "\"" {
                    // A doubled quote is a quote; a single one closes the field.
                    var lookahead = iterator
                    if lookahead.next() == "\"" {
                        field.append("\"")
                        iterator = lookahead
                    } else {
                        quoted = false
                    }
                } else {
                    field.append(character)
                }
            } else if character == "," {
                fields.append(field)
                field = ""
                atStart = true
                continue
            } else if character == "\"" && atStart {
                quoted = true
            } else {
                field.append(character)
            }
            atStart = false
        }
        if quoted { throw KeyAssignError(.dataError, "--preassigned \(path) line \(number): unterminated quote") }
        fields.append(field)
        return fields
    }
}
