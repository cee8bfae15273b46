/// A kept key listing's signed payload, as the signature covers it, for verifying it by hand
/// (`keyassign audit --export-listing N`, docs/signatures.md): rebuilt from the kept entries
/// (migration 7 on), or read as kept (migration 5). The signature is `listings.signature`.
public enum KeptListing {
    public static func signedPayload(_ db: Database, listing id: Int64) throws -> OwnedBytes {
        let form = try db.prepare(
            "SELECT layout IS NOT NULL, typeof(payload), pruned_at, payload_sha256 FROM listings WHERE id = ?1")
        try form.bind(1, id)
        guard try form.step() else { throw KeyAssignError(.dataError, "no key listing \(id) in \(db.path)") }
        if let prunedAt = form.string(2) {
            throw KeyAssignError(
                .dataError,
                "key listing \(id) was pruned on \(prunedAt); its signed payload had SHA-256 \(form.string(3) ?? "?")")
        }
        if form.int(0) != 0 {
            var reader = ListingArchive.Reader(db)
            do {
                return try reader.payload(listing: id)
            } catch let malformed as ListingLayout.Malformed {
                throw KeyAssignError(.dataError, "key listing \(id) cannot be rebuilt: \(malformed.message)")
            }
        }
        guard form.string(1) == "blob" || form.string(1) == "text" else {
            throw KeyAssignError(
                .dataError,
                "key listing \(id) is kept as its whole envelope (listings.body, before schema version 5): read it from there"
            )
        }
        return try ListingStorage.readBlob(db, table: "listings", column: "payload", row: id)
    }
}
