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
/// Headers are compared with case, spaces and punctuation ignored, against the names shop,
/// payment and CRM exports use (`ColumnAliases`). Two columns that could both be the same
/// field are refused rather than guessed at: mapping the wrong column silently is the worst
/// thing an importer can do. So is mapping none: a file without a recognisable owner-name
/// or email column is refused (unless `--allow-missing` says the shop exports none), since
/// a key assigned to an empty name cannot be assigned again (the server answers 801).
struct ColumnMapping: Equatable {
    var licenseKey: Int
    var ownerName: Int?
    var firstName: Int?
    var lastName: Int?
    var email: Int?
    /// How many columns a data row must have.
    var columnCount: Int
    var headers: [String]
    /// Required fields the file has no column for, allowed by `--allow-missing`.
    var allowedMissing: [ImportField] = []
    /// `--map` entries that named a column this file lacks, and so did not apply to it.
    var unusedOverrides: [ImportField: String] = [:]

    /// `License Key` → `licensekey`; `E-Mail` → `email`.
    static func normalize(_ header: String) -> String {
        String(
            String.UnicodeScalarView(
                header.unicodeScalars.filter { $0.properties.isAlphabetic || $0.properties.numericType != nil })
        )
        .lowercased()
    }

    enum Failure: Error, Equatable {
        case noKeyColumn
        /// A required field (owner_name or email) has no column; `ignoredMap` is the `--map`
        /// column given for it that this file lacks, if any.
        case missingField(ImportField, ignoredMap: String?)
        case mappedColumnMissing(ImportField, String)
        case ambiguous(ImportField, [String])
    }

    /// Maps `headers` (already trimmed). `overrides` (field → column name) take precedence;
    /// one whose column the file lacks does not apply to it, unless `strict` (a mapping chosen
    /// for this very file, from a `--map-file`), where it refuses the file.
    static func resolve(
        headers: [String], overrides: [ImportField: String], strict: Set<ImportField> = [],
        allowMissing: Set<ImportField> = []
    ) -> Result<ColumnMapping, Failure> {
        let normalized = headers.map(normalize)
        func column(named wanted: String) -> Result<Int?, Failure> {
            if let exact = headers.firstIndex(of: wanted) { return .success(exact) }
            let key = normalize(wanted)
            let matches = normalized.indices.filter { normalized[$0] == key && !key.isEmpty }
            if matches.count > 1 { return .failure(.ambiguous(.licenseKey, matches.map { headers[$0] })) }
            return .success(matches.first)
        }
        // The overrides that apply to this file: their column is there.
        var applied: [ImportField: Int] = [:]
        var unused: [ImportField: String] = [:]
        for (field, wanted) in overrides {
            switch column(named: wanted) {
            case .failure(.ambiguous(_, let columns)): return .failure(.ambiguous(field, columns))
            case .failure(let other): return .failure(other)
            case .success(let index?): applied[field] = index
            case .success(nil):
                if strict.contains(field) { return .failure(.mappedColumnMissing(field, wanted)) }
                unused[field] = wanted
            }
        }
        let taken = Set(applied.values)
        func find(_ field: ImportField, tiers: [[String]]? = nil, excluding: Set<Int> = []) -> Result<Int?, Failure> {
            if let index = applied[field] { return .success(index) }
            // The first tier with a match decides: `Billing Name` before a bare `Name`
            // (which is Shopify's order number).
            for tier in tiers ?? ColumnAliases.tiers(for: field) {
                let names = Set(tier.map(normalize))
                let free = normalized.indices.filter {
                    names.contains(normalized[$0]) && !taken.contains($0) && !excluding.contains($0)
                }
                if free.count > 1 { return .failure(.ambiguous(field, free.map { headers[$0] })) }
                if let only = free.first { return .success(only) }
            }
            return .success(nil)
        }
        do {
            guard let key = try find(.licenseKey).get() else {
                return .failure(.noKeyColumn)
            }
            let used: Set<Int> = [key]
            var owner = try find(
                .ownerName, tiers: Array(ColumnAliases.tiers(for: .ownerName).dropLast()), excluding: used
            ).get()
            var first: Int?
            var last: Int?
            if owner == nil {
                // First + last name are used when there is no full-name column. A bare `Nom`
                // or `Name` beside a first-name column is the family name (`Prénom`, `Nom`).
                first = try find(.firstName, excluding: used).get()
                last = try find(.lastName, excluding: used.union([first].compactMap { $0 })).get()
                let weak = try find(
                    .ownerName, tiers: ColumnAliases.tiers(for: .ownerName).suffix(1),
                    excluding: used.union([first, last].compactMap { $0 })
                ).get()
                if first != nil && last == nil {
                    last = weak
                } else if first == nil && last == nil {
                    owner = weak
                }
            }
            let names = Set([owner, first, last].compactMap { $0 })
            let email = try find(.email, excluding: used.union(names)).get()
            var allowed: [ImportField] = []
            if owner == nil && first == nil && last == nil {
                guard allowMissing.contains(.ownerName) else {
                    return .failure(.missingField(.ownerName, ignoredMap: unused[.ownerName]))
                }
                allowed.append(.ownerName)
            }
            if email == nil {
                guard allowMissing.contains(.email) else {
                    return .failure(.missingField(.email, ignoredMap: unused[.email]))
                }
                allowed.append(.email)
            }
            return .success(
                ColumnMapping(
                    licenseKey: key, ownerName: owner, firstName: first, lastName: last,
                    email: email, columnCount: headers.count, headers: headers,
                    allowedMissing: allowed, unusedOverrides: unused))
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
        for field in allowedMissing {
            parts.append("\(field.rawValue)=(none: --allow-missing \(field.rawValue), sent empty)")
        }
        for (field, column) in unusedOverrides.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
            parts.append("(--map \(field.rawValue)=\(column) not applied: no such column)")
        }
        return parts.joined(separator: " ")
    }

    private func quoted(_ column: Int) -> String { "\"\(name(column))\"" }
}

extension ColumnMapping.Failure {
    func message(file: String, headers: [String]) -> String {
        let found = headers.isEmpty ? "(none)" : headers.map { "\"\($0)\"" }.joined(separator: ", ")
        switch self {
        case .noKeyColumn:
            return
                "\(file): no license-key column (looked for \(ColumnAliases.examples(for: .licenseKey))); headers found: \(found); name it with --map license_key=COLUMN"
        case .missingField(let field, let ignoredMap):
            let what = field == .email ? "email" : "owner-name"
            let ignored =
                ignoredMap.map { "; --map \(field.rawValue)=\($0) does not apply: no such column in this file" } ?? ""
            let allow =
                field == .ownerName
                ? ", or --allow-missing owner_name if this shop exports no names"
                : ", or --allow-missing email if this shop exports no email addresses"
            return
                "\(file): no \(what) column recognised (looked for \(ColumnAliases.examples(for: field))); headers found: \(found)\(ignored); "
                + "name it with --map \(field.rawValue)=COLUMN\(allow). Nothing of this file was imported: "
                + "a key assigned without its buyer's \(field == .email ? "email" : "name") cannot be assigned again."
        case .mappedColumnMissing(let field, let column):
            return "\(file): --map \(field.rawValue)=\(column): no such column; headers found: \(found)"
        case .ambiguous(let field, let columns):
            return
                "\(file): columns \(columns.map { "\"\($0)\"" }.joined(separator: " and ")) could each be the \(field.rawValue); choose one with --map \(field.rawValue)=COLUMN; headers found: \(found)"
        }
    }
}
