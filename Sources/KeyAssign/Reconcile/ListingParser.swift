/// Reads the signed payload of `get-license-keys` into a `ListingIndex`:
/// `{"code":730,"message":"License keys","license_keys":[{...},...],"timestamp":...}`.
///
/// `code`, `message` and `timestamp` are read as in every signed payload (`SignedFields`: the
/// code a JSON integer or a string of digits, as PHP sends `"400"` on a sibling call). Each entry needs a `license_key` string; `status`,
/// `owner_name`, `owner_email` and `assigned_at` are strings or null; other fields are
/// skipped. Anything else is a payload keyassign cannot read, and nothing is settled from it.
enum ListingParser {
    struct Failure: Error, Sendable {
        /// True when a required field is missing or of the wrong type (vs. not JSON at all).
        var missingFields: Bool
        var message: String
    }

    static func parse(_ payload: OwnedBytes) -> Result<ListingIndex, Failure> {
        var scanner = JSONScanner(payload.buffer)
        let fields: SignedFields
        var entries: Range<Int>?
        do throws(JSONParseError) {
            let members = try scanner.objectMembers()
            try scanner.expectEnd()
            // code, message and timestamp by the rules every signed payload is read by.
            fields = try SignedFields(members: members, in: payload.buffer)
            entries = members.first { $0.name == "license_keys" }?.value
        } catch {
            return .failure(
                Failure(missingFields: false, message: "the signed payload is not JSON: \(error.description)"))
        }
        var missing = fields.problems
        if entries == nil { missing.append("license_keys (array)") }
        guard missing.isEmpty, let code = fields.code, let message = fields.message, let timestamp = fields.timestamp,
            let entries
        else {
            return .failure(
                Failure(missingFields: true, message: "the signed payload lacks " + missing.joined(separator: ", ")))
        }
        let index = ListingIndex(payload: payload, code: code, message: message, timestamp: timestamp)
        do throws(Failure) {
            try readEntries(payload.buffer, range: entries, into: index)
        } catch {
            return .failure(error)
        }
        index.buildTable()
        return .success(index)
    }

    private static func readEntries(
        _ bytes: UnsafeBufferPointer<UInt8>, range: Range<Int>,
        into index: ListingIndex
    ) throws(Failure) {
        var scanner = JSONScanner(bytes, position: range.lowerBound)
        var number = 0
        func fail(_ text: String, missing: Bool = true) -> Failure {
            Failure(missingFields: missing, message: "license_keys[\(number)]: \(text)")
        }
        do {
            guard scanner.consume(UInt8(ascii: "[")) else {
                throw Failure(missingFields: true, message: "license_keys is not an array")
            }
            if scanner.consume(UInt8(ascii: "]")) { return }
            repeat {
                guard scanner.peek() == UInt8(ascii: "{") else { throw fail("not an object") }
                let objectStart = scanner.position
                scanner.position += 1
                var slot = ListingIndex.Slot(
                    object: .null, key: .null, status: .null, ownerName: .null,
                    ownerEmail: .null, assignedAt: .null)
                // The five fields read are found by their bytes, without making a String of
                // every member name (11 per entry, 200,000 entries); each may appear once.
                var seen: UInt8 = 0
                if !scanner.consume(UInt8(ascii: "}")) {
                    repeat {
                        let nameScan = try scanner.scanString()
                        let field =
                            nameScan.escaped
                            ? Self.field(named: Array(try scanner.decodeString(nameScan).utf8))
                            : Self.field(named: UnsafeBufferPointer(rebasing: bytes[nameScan.range]))
                        try scanner.expect(UInt8(ascii: ":"), "':'")
                        guard let field else {
                            try scanner.skipValue(depth: 2)
                            continue
                        }
                        guard seen & (1 << field.rawValue) == 0 else {
                            throw fail("duplicate member \"\(field.name)\"", missing: false)
                        }
                        seen |= 1 << field.rawValue
                        let ref = try stringRef(&scanner, into: index, field: field.name, number: number)
                        switch field {
                        case .licenseKey: slot.key = ref
                        case .status: slot.status = ref
                        case .ownerName: slot.ownerName = ref
                        case .ownerEmail: slot.ownerEmail = ref
                        case .assignedAt: slot.assignedAt = ref
                        }
                    } while scanner.consume(UInt8(ascii: ","))
                    try scanner.expect(UInt8(ascii: "}"), "',' or '}'")
                }
                guard slot.key.count != .max else { throw fail("no license_key string") }
                slot.object = ListingIndex.Ref(
                    start: UInt32(objectStart), count: UInt32(scanner.position - objectStart))
                index.slots.append(slot)
                number += 1
            } while scanner.consume(UInt8(ascii: ","))
            try scanner.expect(UInt8(ascii: "]"), "',' or ']'")
        } catch let failure as Failure {
            throw failure
        } catch let error as JSONParseError {
            throw Failure(
                missingFields: false,
                message: "the signed payload is not JSON: license_keys[\(number)]: \(error.description)")
        } catch {
            throw Failure(missingFields: false, message: "the signed payload is not JSON: \(error)")
        }
    }

    enum Field: UInt8, CaseIterable {
        case licenseKey, status, ownerName, ownerEmail, assignedAt

        var name: String {
            switch self {
            case .licenseKey: "license_key"
            case .status: "status"
            case .ownerName: "owner_name"
            case .ownerEmail: "owner_email"
            case .assignedAt: "assigned_at"
            }
        }

        static let names: [(Field, [UInt8])] = allCases.map { ($0, Array($0.name.utf8)) }
    }

    static func field<Bytes: Collection<UInt8>>(named bytes: Bytes) -> Field? {
        for (field, name) in Field.names where name.count == bytes.count && name.elementsEqual(bytes) { return field }
        return nil
    }

    /// A string field (or null) as a reference into the payload, or into the index's decoded
    /// bytes when it held escapes.
    private static func stringRef(
        _ scanner: inout JSONScanner, into index: ListingIndex, field: String,
        number: Int
    ) throws -> ListingIndex.Ref {
        if try scanner.consumeNull() { return .null }
        guard scanner.peek() == UInt8(ascii: "\"") else {
            throw Failure(
                missingFields: true, message: "license_keys[\(number)]: \(field) is neither a string nor null")
        }
        let scanned = try scanner.scanString()
        if !scanned.escaped {
            let raw = UnsafeBufferPointer(rebasing: scanner.bytes[scanned.range])
            // Keys, emails and dates are ASCII: only other text needs the UTF-8 check.
            guard raw.allSatisfy({ $0 < 0x80 }) || String(validating: raw, as: UTF8.self) != nil else {
                throw JSONParseError(offset: scanned.range.lowerBound, reason: "invalid UTF-8 in a string")
            }
            return ListingIndex.Ref(start: UInt32(scanned.range.lowerBound), count: UInt32(scanned.range.count))
        }
        let text = try scanner.decodeString(scanned)
        let start = index.decoded.count
        index.decoded.append(contentsOf: text.utf8)
        return ListingIndex.Ref(start: UInt32(start) | ListingIndex.Ref.decodedFlag, count: UInt32(text.utf8.count))
    }
}
