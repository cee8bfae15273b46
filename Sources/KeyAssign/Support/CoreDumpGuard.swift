import CCurl

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Keeps the API key out of core files: once a process holds the key, it makes itself
/// non-dumpable (`prctl(PR_SET_DUMPABLE, 0)`) and sets `RLIMIT_CORE` to 0, so a crash (or a
/// `kill -QUIT`) writes no core holding the key, whatever `ulimit -c` or `core_pattern` say,
/// and no other process of the same user can attach to it or read its memory through
/// /proc. Called by `RunSetup.apiKey` the moment the key is read; idempotent.
public enum CoreDumpGuard {
    /// Throws `KeyAssignError(.config)` when the system refuses: better no run than a run
    /// whose crash could leave the key on disk.
    public static func engage() throws {
        let failure = ka_forbid_core_dumps()
        if failure != 0 {
            throw KeyAssignError(
                .config, "cannot turn core dumps off before holding the API key: \(String(cString: strerror(failure)))")
        }
    }
}
