/// What the server's key listing says about one license key: the fields the reconcile rules
/// read, and the entry's JSON text exactly as signed (kept as each settlement's evidence).
public struct ListingEntry: Sendable, Equatable {
    /// Position in `license_keys`, from 0.
    public var index: Int
    public var licenseKey: String
    public var status: String?
    public var ownerName: String?
    public var ownerEmail: String?
    /// `"YYYY-MM-DD HH:MM:SS"` in the server's clock, or nil when not assigned.
    public var assignedAt: String?
    public var text: String

    public init(
        index: Int, licenseKey: String, status: String?, ownerName: String?, ownerEmail: String?,
        assignedAt: String?, text: String
    ) {
        self.index = index
        self.licenseKey = licenseKey
        self.status = status
        self.ownerName = ownerName
        self.ownerEmail = ownerEmail
        self.assignedAt = assignedAt
        self.text = text
    }

    /// An entry from its stored JSON text (`settlements.entry`); nil when it is not an object
    /// with a `license_key` string.
    public static func parse(storedText text: String, index: Int) -> ListingEntry? {
        Array(text.utf8).withUnsafeBufferPointer { bytes -> ListingEntry? in
            var scanner = JSONScanner(bytes)
            guard let members = try? scanner.objectMembers(), (try? scanner.expectEnd()) != nil else { return nil }
            var strings: [String: String] = [:]
            for member in members where bytes[member.value.lowerBound] == UInt8(ascii: "\"") {
                var reader = JSONScanner(bytes, position: member.value.lowerBound)
                strings[member.name] = try? reader.decodeString(try reader.scanString())
            }
            guard let key = strings["license_key"] else { return nil }
            return ListingEntry(
                index: index, licenseKey: key, status: strings["status"], ownerName: strings["owner_name"],
                ownerEmail: strings["owner_email"], assignedAt: strings["assigned_at"], text: text)
        }
    }

    /// One line for people: "assigned to Ada <ada@example.com> since 2026-12-01 10:00:00".
    public var summary: String {
        var text = "status \(status ?? "(none)")"
        if ownerName != nil || ownerEmail != nil {
            text += ", owner \(ownerName ?? "(no name)") <\(ownerEmail ?? "no email")>"
        }
        if let assignedAt { text += ", assigned_at \(assignedAt)" }
        return text
    }
}
