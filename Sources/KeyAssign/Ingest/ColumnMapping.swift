/// A value keyassign takes from an export, named as `--map` names it.
public enum ImportField: String, Sendable, CaseIterable, Hashable {
    case licenseKey = "license_key"
    case ownerName = "owner_name"
    case email = "email"
    case firstName = "first_name"
    case lastName = "last_name"
}

/// Which column of a file holds which field, decided from the header row.
///
/// Headers are compared with case, spaces and punctuation ignored, against the names sales
/// systems use. Two columns that could both be the same field are refused rather than
/// guessed at: mapping the wrong column silently is the worst thing an importer can do.
struct ColumnMapping: Equatable {
    var licenseKey: Int
    var ownerName: Int?
    var firstName: Int?
    var lastName: Int?
    var email: Int?
    /// How many columns a data row must have.
    var columnCount: Int
    var headers: [String]

    static let aliases: [ImportField: [String]] = [
        .licenseKey: ["license_key", "license key", "licensekey", "key", "serial", "serial number", "license"],
        .ownerName: ["owner_name", "owner", "name", "customer name", "full name"],
        .email: ["email", "e-mail", "email address", "customer email", "owner_email", "customer_email"],
        .firstName: ["first name"],
        .lastName: ["last name"],
    ]

    /// `License Key` → `licensekey`; `E-Mail` → `email`.
    static func normalize(_ header: String) -> String {
        String(String.UnicodeScalarView(header.unicodeScalars.filter { $0.properties.isAlphabetic || $0.properties.numericType != nil }))
            .lowercased()
    }

    enum Failure: Error, Equatable {
        case noKeyColumn
        case mappedColumnMissing(ImportField, String)
        case ambiguous(ImportField, [String])
    }

    /// Maps `headers` (already trimmed), with `overrides` (field → column name) taking precedence.
    static func resolve(headers: [String], overrides: [ImportField: String]) -> Result<ColumnMapping, Failure> {
        let normalized = headers.map(normalize)
        func find(_ field: ImportField) -> Result<Int?, Failure> {
            if let wanted = overrides[field] {
                if let exact = headers.firstIndex(of: wanted) { return .success(exact) }
                let key = normalize(wanted)
                let matches = normalized.indices.filter { normalized[$0] == key && !key.isEmpty }
                if matches.count == 1 { return .success(matches[0]) }
                if matches.count > 1 { return .failure(.ambiguous(field, matches.map { headers[$0] })) }
                return .failure(.mappedColumnMissing(field, wanted))
            }
            let names = Set((aliases[field] ?? []).map(normalize))
            let matches = normalized.indices.filter { names.contains(normalized[$0]) }
            // A column the user mapped to another field is not a candidate here.
            let taken = Set(overrides.compactMap { entry in headers.firstIndex(of: entry.value) })
            let free = matches.filter { !taken.contains($0) }
            if free.count > 1 { return .failure(.ambiguous(field, free.map { headers[$0] })) }
            return .success(free.first)
        }
        do {
            guard let key = try find(.licenseKey).get() else { return .failure(.noKeyColumn) }
            let owner = try find(.ownerName).get()
            // First + last name are only used when there is no full-name column.
            let first = owner == nil ? try find(.firstName).get() : nil
            let last = owner == nil ? try find(.lastName).get() : nil
            let email = try find(.email).get()
            return .success(ColumnMapping(licenseKey: key, ownerName: owner, firstName: first, lastName: last,
                                          email: email, columnCount: headers.count, headers: headers))
        } catch {
            return .failure(error)
        }
    }

    func name(_ column: Int) -> String { column < headers.count ? headers[column] : "column \(column + 1)" }

    /// One line for the import summary.
    var summary: String {
        var parts = ["license_key=\(quoted(licenseKey))"]
        if let ownerName { parts.append("owner_name=\(quoted(ownerName))") }
        if ownerName == nil, firstName != nil || lastName != nil {
            parts.append("owner_name=" + [firstName, lastName].compactMap { $0 }.map(quoted).joined(separator: "+"))
        }
        if let email { parts.append("email=\(quoted(email))") }
        return parts.joined(separator: " ")
    }

    private func quoted(_ column: Int) -> String { "\"\(name(column))\"" }
}

extension ColumnMapping.Failure {
    func message(file: String, headers: [String]) -> String {
        let found = headers.isEmpty ? "(none)" : headers.map { "\"\($0)\"" }.joined(separator: ", ")
        switch self {
        case .noKeyColumn:
            return "\(file): no license-key column (looked for license_key, license key, key, serial, serial number, license); headers found: \(found); name it with --map license_key=COLUMN"
        case .mappedColumnMissing(let field, let column):
            return "\(file): --map \(field.rawValue)=\(column): no such column; headers found: \(found)"
        case .ambiguous(let field, let columns):
            return "\(file): columns \(columns.map { "\"\($0)\"" }.joined(separator: " and ")) could each be the \(field.rawValue); choose one with --map \(field.rawValue)=COLUMN; headers found: \(found)"
        }
    }
}
