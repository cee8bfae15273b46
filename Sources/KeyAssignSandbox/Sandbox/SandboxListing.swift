/// The payload of the sandbox's `GET /api/v1/get-license-keys`: its whole inventory in the
/// Key Manager's shape (code 730, message "License keys", one object per key with the
/// vendor's fields), written as PHP's `json_encode` would (compact, `/` escaped).
enum SandboxListing {
    struct Key {
        var licenseKey: String
        var assignment: AssignmentRecord?
    }

    /// `createdAt` is the inventory's creation time (ISO 8601).
    static func payload(_ keys: [Key], createdAt: String, timestamp: Int) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(keys.count * 330 + 100)
        append(&out, "{\"code\":730,\"message\":\"License keys\",\"license_keys\":[")
        let created = laravelTime(createdAt)
        for (offset, key) in keys.enumerated() {
            if offset > 0 { out.append(UInt8(ascii: ",")) }
            append(&out, "{\"id\":\(offset + 1),\"product_id\":1,\"license_key\":")
            string(&out, key.licenseKey)
            append(&out, ",\"owner_name\":")
            string(&out, key.assignment?.ownerName)
            append(&out, ",\"owner_email\":")
            string(&out, key.assignment?.email)
            append(&out, ",\"activation_limit\":1,\"validity\":365,\"assigned_at\":")
            if let assignment = key.assignment {
                time(&out, assignment.assignedAt, laravel: false)
            } else {
                append(&out, "null")
            }
            append(&out, key.assignment == nil ? ",\"status\":\"available\"" : ",\"status\":\"assigned\"")
            append(&out, ",\"created_at\":")
            string(&out, created)
            append(&out, ",\"updated_at\":")
            if let assignment = key.assignment {
                time(&out, assignment.assignedAt, laravel: true)
            } else {
                string(&out, created)
            }
            out.append(UInt8(ascii: "}"))
        }
        append(&out, "],\"timestamp\":\(timestamp)}")
        return out
    }

    /// `2026-12-02T13:40:12.123Z` → `2026-12-02 13:40:12` (the vendor's `assigned_at`).
    static func serverTime(_ iso: String) -> String {
        String(iso.prefix(19)).replacingOccurrences(of: "T", with: " ")
    }

    /// `2026-12-02T13:40:12.123Z` → `2026-12-02T13:40:12.000000Z` (Laravel's timestamps).
    static func laravelTime(_ iso: String) -> String {
        String(iso.prefix(19)) + ".000000Z"
    }

    /// `serverTime(iso)` or `laravelTime(iso)` as a JSON string, written byte by byte: a
    /// listing of 200,000 assigned keys formats 400,000 of them, and the String operations
    /// took most of the sandbox's time to answer (a year of nights in `scripts/bench years`
    /// measured the server, not keyassign). The same bytes as `string(&out, serverTime(iso))`.
    private static func time(_ out: inout [UInt8], _ iso: String, laravel: Bool) {
        let plain = iso.utf8.withContiguousStorageIfAvailable { bytes -> Bool in
            guard bytes.count >= 19,
                bytes[..<19].allSatisfy({ $0 >= 0x20 && $0 < 0x7F && $0 != 0x22 && $0 != 0x5C && $0 != 0x2F })
            else { return false }
            out.append(UInt8(ascii: "\""))
            for byte in bytes[..<19] {
                out.append(!laravel && byte == UInt8(ascii: "T") ? UInt8(ascii: " ") : byte)
            }
            if laravel { append(&out, ".000000Z") }
            out.append(UInt8(ascii: "\""))
            return true
        }
        if plain == true { return }
        string(&out, laravel ? laravelTime(iso) : serverTime(iso))
    }

    private static func append(_ out: inout [UInt8], _ text: String) {
        out.append(contentsOf: text.utf8)
    }

    private static func string(_ out: inout [UInt8], _ text: String?) {
        guard let text else { return append(&out, "null") }
        // Most keys, names and emails need no escape: copy them as they are.
        if text.utf8.allSatisfy({
            $0 >= 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") && $0 != UInt8(ascii: "/")
        }) {
            out.append(UInt8(ascii: "\""))
            out.append(contentsOf: text.utf8)
            out.append(UInt8(ascii: "\""))
        } else {
            append(&out, SignedReplyMaker.jsonString(text))
        }
    }
}
