/// The schema, as numbered migrations applied in order and recorded in `PRAGMA user_version`.
/// A migration, once released, is never edited: add the next one instead.
///
/// Row states (`work.state`) are part of keyassign's interface; `docs/states.md` has the
/// state machine. Times ending in `_at` are ISO 8601 UTC text, except `next_attempt_at`,
/// which is Unix seconds because the queue compares it.
enum Migrations {
    static let all: [(version: Int32, sql: String)] = [
        (
            1,
            """
            CREATE TABLE imports (
                id              INTEGER PRIMARY KEY,
                path            TEXT    NOT NULL,
                size            INTEGER NOT NULL,
                sha256          TEXT    NOT NULL UNIQUE,
                rows_read       INTEGER NOT NULL,
                rows_queued     INTEGER NOT NULL,
                rows_duplicate  INTEGER NOT NULL,
                rows_conflict   INTEGER NOT NULL,
                rows_invalid    INTEGER NOT NULL,
                imported_at     TEXT    NOT NULL
            );

            -- One row per license key: the unit of work.
            CREATE TABLE work (
                id                INTEGER PRIMARY KEY,
                license_key       TEXT    NOT NULL UNIQUE,
                owner_name        TEXT,
                email             TEXT,
                state             TEXT    NOT NULL DEFAULT 'pending' CHECK (state IN
                                    ('pending', 'in_flight', 'retry', 'assigned', 'rejected', 'uncertain', 'failed')),
                -- Attempts that count towards --max-attempts (a 429 does not).
                attempts          INTEGER NOT NULL DEFAULT 0,
                -- 1 once any attempt may have reached the server without a verified answer:
                -- from then on a verified 801 means `uncertain`, never `rejected`.
                maybe_delivered   INTEGER NOT NULL DEFAULT 0,
                next_attempt_at   REAL,
                last_code         INTEGER,
                last_http_status  INTEGER,
                last_error        TEXT,
                -- The run that holds the row while it is in flight, and since when.
                run_id            INTEGER,
                in_flight_since   TEXT,
                -- Sent as Idempotency-Key on every attempt; created at import, never changed.
                idempotency_token TEXT    NOT NULL,
                import_id         INTEGER NOT NULL REFERENCES imports(id),
                source_file       TEXT    NOT NULL,
                source_line       INTEGER NOT NULL,
                created_at        TEXT    NOT NULL,
                updated_at        TEXT    NOT NULL
            );
            -- The queue's view: rows that still have work, in the order they were imported.
            CREATE INDEX work_due ON work (state, next_attempt_at)
                WHERE state IN ('pending', 'in_flight', 'retry');

            -- Input rows that could not be queued, with why; kept so sales ops can fix the export.
            CREATE TABLE invalid_rows (
                id           INTEGER PRIMARY KEY,
                import_id    INTEGER REFERENCES imports(id),
                source_file  TEXT    NOT NULL,
                source_line  INTEGER NOT NULL,
                raw          TEXT    NOT NULL,
                reason       TEXT    NOT NULL,
                license_key  TEXT,
                owner_name   TEXT,
                email        TEXT,
                created_at   TEXT    NOT NULL
            );

            CREATE TABLE runs (
                id           INTEGER PRIMARY KEY,
                started_at   TEXT    NOT NULL,
                ended_at     TEXT,
                pid          INTEGER NOT NULL,
                host         TEXT    NOT NULL,
                server       TEXT    NOT NULL,
                rows_done    INTEGER NOT NULL DEFAULT 0,
                exit_status  INTEGER,
                summary      TEXT
            );

            -- At most one run per database; see RunLock.
            CREATE TABLE run_lock (
                id          INTEGER PRIMARY KEY CHECK (id = 1),
                pid         INTEGER NOT NULL,
                host        TEXT    NOT NULL,
                started_at  TEXT    NOT NULL,
                run_id      INTEGER
            );

            -- Every attempt of every row: the audit trail, with the raw signed reply.
            CREATE TABLE attempts (
                id           INTEGER PRIMARY KEY,
                work_id      INTEGER NOT NULL REFERENCES work(id),
                run_id       INTEGER NOT NULL,
                attempt      INTEGER NOT NULL,
                started_at   TEXT    NOT NULL,
                ended_at     TEXT    NOT NULL,
                latency_ms   REAL,
                http_status  INTEGER,
                code         INTEGER,
                outcome      TEXT    NOT NULL,
                verdict      TEXT,
                error        TEXT,
                reply        BLOB
            );
            CREATE INDEX attempts_by_work ON attempts (work_id);
            """
        ),
        // A run's summary counts the rows it touched (`attempts.run_id`); without this index
        // that was a scan and a temporary sort of every attempt ever made, ~24 MB at 1M rows.
        (
            2,
            """
            CREATE INDEX attempts_by_run ON attempts (run_id, work_id);
            """
        ),
        // Several public keys may share a name (two products, both "product"), so a trusted
        // verdict records which key verified the reply: its file, and the SHA-256 of its DER
        // SubjectPublicKeyInfo, which still names it after the file is moved. NULL for
        // attempts without a trusted reply, and for those recorded before this migration.
        (
            3,
            """
            ALTER TABLE attempts ADD COLUMN signing_key_file TEXT;
            ALTER TABLE attempts ADD COLUMN signing_key_sha256 TEXT;
            """
        ),
        // Reconcile (issue 12): the server's signed key listing kept as evidence, and one
        // settlement per row it settled or explained, pointing at the listing and its entry.
        (
            4,
            """
            CREATE TABLE listings (
                id          INTEGER PRIMARY KEY,
                server      TEXT    NOT NULL,
                -- Local time the request started, and the signed timestamp (Unix seconds):
                -- the listing was taken no earlier than the smaller of the two.
                fetched_at  TEXT    NOT NULL,
                signed_at   INTEGER NOT NULL,
                key_name    TEXT    NOT NULL,
                entries     INTEGER NOT NULL,
                bytes       INTEGER NOT NULL,
                -- The raw signed envelope exactly as received; `audit` re-verifies it.
                body        BLOB    NOT NULL
            );
            CREATE TABLE settlements (
                id           INTEGER PRIMARY KEY,
                work_id      INTEGER NOT NULL REFERENCES work(id),
                listing_id   INTEGER NOT NULL REFERENCES listings(id),
                -- Position in the listing's license_keys; NULL: the key is not listed.
                entry_index  INTEGER,
                -- The entry's JSON text as signed, for `history` without re-reading the listing.
                entry        TEXT,
                from_state   TEXT    NOT NULL,
                to_state     TEXT    NOT NULL,
                rule         TEXT    NOT NULL,
                reason       TEXT    NOT NULL,
                -- Equal to work.updated_at while the settlement is the row's last change.
                settled_at   TEXT    NOT NULL
            );
            CREATE INDEX settlements_by_work ON settlements (work_id, id);
            CREATE INDEX settlements_by_listing ON settlements (listing_id);
            -- The --timeout a run's requests had: a listing proves a key available only after
            -- the last attempt's start plus this.
            ALTER TABLE runs ADD COLUMN request_timeout REAL;
            """
        ),
        // A listing is kept as what its signature covers: `payload`, the signed payload
        // (`response_base64` decoded: only canonical base64 verifies, so encoding it again gives
        // the signed text byte for byte), and `signature`, the envelope's signature as sent.
        // `body` is then empty: the rest of the envelope (chiefly its unsigned `response`, a
        // second copy of the payload) proves nothing and doubled what each listing wrote.
        // Listings stored before keep their whole envelope in `body`, with these NULL;
        // `audit` verifies both.
        (
            5,
            """
            ALTER TABLE listings ADD COLUMN payload BLOB;
            ALTER TABLE listings ADD COLUMN signature TEXT;
            """
        ),
        // Quotas (issue 21), so that a second run the same day knows what is left: when requests
        // left, for the `--rate N/WINDOW` limits (one row per claimed batch, kept for the
        // longest window), and what the server last said of its quota (one row). Times are
        // Unix seconds (`_unix`), since the limits compare them.
        (
            6,
            """
            CREATE TABLE quota_sends (
                sent_unix  REAL    NOT NULL,
                requests   INTEGER NOT NULL
            );
            CREATE INDEX quota_sends_by_time ON quota_sends (sent_unix);
            CREATE TABLE quota_state (
                id                 INTEGER PRIMARY KEY CHECK (id = 1),
                -- A 429's Retry-After that --max-wait could not wait out: nothing is sent before.
                closed_until_unix  REAL,
                closed_reason      TEXT,
                -- The server's X-RateLimit-Limit, -Remaining (less what was sent after the reply
                -- that said it) and -Reset, and when it said them.
                limit_count        INTEGER,
                remaining          INTEGER,
                reset_unix         REAL,
                reported_at        TEXT,
                -- Requests the last run stopped by the quota got through: what a night sends.
                per_run            INTEGER
            );
            """
        ),
        // Evidence that does not grow with the nights (issue 21). Each distinct listing entry
        // is kept once, found by the SHA-256 of its exact bytes; a listing is its framing and
        // its entry list as runs (`ListingLayout`), often of another listing's list (`base_id`,
        // `layout_depth` links from the last standalone one). `payload` and `body` stay for
        // listings kept before. A pruned listing (`keyassign prune`) keeps its row, the
        // SHA-256 of its signed payload and when it was pruned; its bytes are gone.
        // `imports` gains what `stat` says of a file, so a file imported before costs a stat.
        (
            7,
            """
            CREATE TABLE listing_entries (
                id      INTEGER PRIMARY KEY,
                sha256  BLOB    NOT NULL UNIQUE,
                body    BLOB    NOT NULL
            );
            ALTER TABLE listings ADD COLUMN layout BLOB;
            ALTER TABLE listings ADD COLUMN base_id INTEGER REFERENCES listings(id);
            ALTER TABLE listings ADD COLUMN layout_depth INTEGER;
            ALTER TABLE listings ADD COLUMN pruned_at TEXT;
            ALTER TABLE listings ADD COLUMN payload_sha256 TEXT;
            ALTER TABLE imports ADD COLUMN file_device INTEGER;
            ALTER TABLE imports ADD COLUMN file_inode INTEGER;
            ALTER TABLE imports ADD COLUMN file_mtime_ns INTEGER;
            CREATE INDEX imports_by_path ON imports (path);
            """
        ),
        // The per-row history, smaller (issue 21): a trusted reply is kept as what its signature
        // covers (`CompactReply`: the signed payload and the signature's bytes) in
        // `signed_replies`, once for every attempt that got the very same signed bytes (two
        // assignments in one second do), and the key that verified it once in `signing_keys`.
        // Such an attempt has `signed_reply_id` set and `reply`, `signing_key_file` and
        // `signing_key_sha256` NULL. Untrusted replies, and attempts recorded before, keep
        // their bytes in `reply`; `audit` verifies both forms. From this version on a new
        // `work` row's `source_file` is '': its import (`import_id`) holds the path
        // (`WorkSourcePath`); a keyassign that predates it would show those rows without one.
        (
            8,
            """
            CREATE TABLE signing_keys (
                id      INTEGER PRIMARY KEY,
                name    TEXT    NOT NULL,
                file    TEXT,
                sha256  TEXT    NOT NULL
            );
            CREATE TABLE signed_replies (
                id              INTEGER PRIMARY KEY,
                signing_key_id  INTEGER NOT NULL REFERENCES signing_keys(id),
                payload         BLOB    NOT NULL,
                signature       BLOB    NOT NULL
            );
            ALTER TABLE attempts ADD COLUMN signed_reply_id INTEGER REFERENCES signed_replies(id);
            """
        ),
        // What runs every night reads no more as history grows (issue 21). `work_unsettled`
        // holds only the rows reconciliation selects and `status` names (uncertain, rejected,
        // failed); the states with work left are in `work_due`; `assigned`, which is all the
        // rest, is `work_total` (kept by triggers on insert and delete, never on the hot path's
        // state changes) less those. The queries spell the index's condition as ORs, which is
        // what lets SQLite see that they imply it.
        (
            9,
            """
            CREATE INDEX work_unsettled ON work (state)
                WHERE state = 'uncertain' OR state = 'rejected' OR state = 'failed';
            CREATE TABLE work_total (
                id    INTEGER PRIMARY KEY CHECK (id = 1),
                rows  INTEGER NOT NULL
            );
            INSERT INTO work_total (id, rows) SELECT 1, count(*) FROM work;
            CREATE TRIGGER work_total_insert AFTER INSERT ON work
                BEGIN UPDATE work_total SET rows = rows + 1 WHERE id = 1; END;
            CREATE TRIGGER work_total_delete AFTER DELETE ON work
                BEGIN UPDATE work_total SET rows = rows - 1 WHERE id = 1; END;
            """
        ),
        // Listing entries deflated (issue 21): the entries first kept with one listing, zlib'd
        // together in chunks of up to 1,024 (`ListingChunk`), keyed by the id of their first
        // entry; entry ids go on from `listing_entries`' (kept as they were, and read) and
        // layouts refer to both alike. A new listing's entries are matched against the kept ones
        // by `digests` (`EntryDigest`: 16 bytes of SHA-256 an entry), never inflating a chunk.
        // `bytes`: the chunk's size inflated.
        (
            10,
            """
            CREATE TABLE listing_chunks (
                first_entry  INTEGER PRIMARY KEY,
                last_entry   INTEGER NOT NULL,
                entries      INTEGER NOT NULL,
                bytes        INTEGER NOT NULL,
                body         BLOB    NOT NULL,
                digests      BLOB    NOT NULL
            );
            """
        ),
    ]

    static func migrate(_ db: Database) throws {
        guard let current = try db.scalarInt("PRAGMA user_version").map(Int32.init) else { return }
        let latest = all.last?.version ?? 0
        if current > latest {
            throw KeyAssignError(
                .config,
                "database \(db.path) has schema version \(current), newer than this keyassign knows (\(latest)); upgrade keyassign"
            )
        }
        for migration in all where migration.version > current {
            try db.transaction {
                try db.execute(migration.sql)
                try db.execute("PRAGMA user_version = \(migration.version)")
            }
        }
    }
}
