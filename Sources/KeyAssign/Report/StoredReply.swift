/// One attempt's stored reply as a file `keyassign verify` (or openssl, docs/signatures.md)
/// checks: `keyassign audit --export-reply ATTEMPT`. An envelope kept whole (untrusted
/// replies, and every reply recorded before schema version 8) is written byte for byte as
/// kept; a compact one (`CompactReply`) as its envelope rebuilt, whose signed text and
/// signature are the ones that arrived.
public enum StoredReply {
    public static func envelope(_ db: Database, attempt id: Int64) throws -> [UInt8] {
        let query = try db.prepare(
            """
            SELECT a.reply, a.signed_reply_id, r.payload, r.signature, k.name, r.id IS NOT NULL
            FROM attempts a LEFT JOIN signed_replies r ON r.id = a.signed_reply_id
                LEFT JOIN signing_keys k ON k.id = r.signing_key_id
            WHERE a.id = ?1
            """)
        try query.bind(1, id)
        guard try query.step() else { throw KeyAssignError(.dataError, "no attempt \(id) in \(db.path)") }
        if query.isNull(1) {
            guard let reply = query.blob(0) else {
                throw KeyAssignError(.dataError, "attempt \(id) has no stored reply")
            }
            return reply
        }
        guard query.int(5) != 0 else {
            throw KeyAssignError(
                .dataError, "attempt \(id) refers to signed reply \(query.int(1)), which is not in \(db.path)")
        }
        return CompactReply(
            payload: query.blob(2) ?? [], signature: query.blob(3) ?? [], keyName: query.string(4) ?? ""
        )
        .envelope
    }
}
