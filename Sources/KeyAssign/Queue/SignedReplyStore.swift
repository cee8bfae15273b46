/// Writes trusted replies in their compact form (`CompactReply`, migration 8): each key that
/// verified one once in `signing_keys`, each distinct signed reply once in `signed_replies`.
///
/// Identical signed bytes are common: the server signs code, message and a timestamp in
/// seconds, so every 800 of one second is the same reply (docs/signatures.md). They are found
/// by the replies this connection wrote last (in memory, bounded), not by an index, which
/// would cost every distinct reply ~40 bytes more; a reply a later run gets again is simply
/// kept again. Not thread-safe: used by `WorkQueue` inside its transactions.
package final class SignedReplyStore {
    private let database: Database
    private var findKey: Statement?
    private var insertKey: Statement?
    private var insertReply: Statement?
    private var keyIDs: [String: Int64] = [:]
    private var replyIDs: [Stored: Int64] = [:]

    /// How many distinct replies are remembered: a run's replies repeat within seconds.
    static let remembered = 4096

    private struct Stored: Hashable {
        var keyID: Int64
        var reply: CompactReply

        /// The signature's first bytes are as good as random: hashing all 330 bytes a byte
        /// at a time cost more than the rest of the lookup. Equality still compares them all.
        func hash(into hasher: inout Hasher) {
            hasher.combine(keyID)
            reply.signature.prefix(16).withUnsafeBytes { hasher.combine(bytes: $0) }
            hasher.combine(reply.payload.count)
        }
    }

    package init(_ database: Database) {
        self.database = database
    }

    /// The id of `reply` as verified by `key`, written if this connection has not written it
    /// lately. Call inside a transaction; after one that rolled back, call `forget()`.
    package func id(for reply: CompactReply, verifiedBy key: SigningKey) throws -> Int64 {
        let keyID = try id(for: key)
        let stored = Stored(keyID: keyID, reply: reply)
        if let id = replyIDs[stored] { return id }
        let insert = try database.prepared(
            &insertReply, "INSERT INTO signed_replies (signing_key_id, payload, signature) VALUES (?1, ?2, ?3)")
        try insert.bind(1, keyID)
        try insert.bindBlob(2, reply.payload)
        try insert.bindBlob(3, reply.signature)
        try insert.step()
        insert.reset()
        let id = database.lastInsertRowID
        if replyIDs.count >= Self.remembered { replyIDs.removeAll(keepingCapacity: true) }
        replyIDs[stored] = id
        return id
    }

    /// Drops what it remembers: ids written in a transaction that rolled back are gone.
    package func forget() {
        keyIDs.removeAll()
        replyIDs.removeAll()
    }

    private func id(for key: SigningKey) throws -> Int64 {
        let remembered = "\(key.name)\u{0}\(key.sha256)\u{0}" + (key.file.map { "f" + $0 } ?? "-")
        if let id = keyIDs[remembered] { return id }
        // A handful of rows (one per key ever configured): no index needed.
        let find = try database.prepared(
            &findKey, "SELECT id FROM signing_keys WHERE name = ?1 AND sha256 = ?2 AND file IS ?3")
        try find.bind(1, key.name)
        try find.bind(2, key.sha256)
        try find.bind(3, key.file)
        let found = try find.step() ? find.int(0) : nil
        find.reset()
        let id: Int64
        if let found {
            id = found
        } else {
            let insert = try database.prepared(
                &insertKey, "INSERT INTO signing_keys (name, file, sha256) VALUES (?1, ?2, ?3)")
            try insert.bind(1, key.name)
            try insert.bind(2, key.file)
            try insert.bind(3, key.sha256)
            try insert.step()
            insert.reset()
            id = database.lastInsertRowID
        }
        keyIDs[remembered] = id
        return id
    }
}
