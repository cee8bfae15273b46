/// The file a `work` row was imported from. Its import (`import_id`) names it, in
/// `imports.path`: since schema version 8 (issue 21) a new row's `source_file` is '' instead of
/// that path again (~50 bytes a row); rows imported before keep theirs. Every reader of a
/// row's file (report, history, HTML report, `retry --source`, import's conflict message)
/// selects `sql` in its place.
enum WorkSourcePath {
    /// The row's path as SQL over unqualified `work` columns (so that it also reads under an
    /// alias, `FROM work w`), served by the primary key of `imports`.
    static let sql = "coalesce(nullif(source_file, ''), (SELECT i.path FROM imports i WHERE i.id = import_id))"

    /// What a new row stores in `source_file`.
    static let stored = ""
}
