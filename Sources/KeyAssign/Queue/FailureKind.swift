/// Whether a `failed` row failed for a reason that passes, read from what the row records
/// (`last_http_status`, `last_code`): the rule that lets a rerun retry it (docs/states.md,
/// "A rerun retries what failed for a passing reason"). Pure.
///
/// It reads only the columns every keyassign version has written, so rows that older versions
/// left `failed` for a passing reason (a timeout or 5xx on the last attempt, a reply that did
/// not verify) come back too.
public enum FailureKind: Sendable, Equatable {
    /// The request itself is wrong, and sending it again cannot help: a verified code under a
    /// 3xx/4xx (the license server refused it), or a 4xx other than 408/429 without one. Stays
    /// `failed` until `keyassign retry`.
    case final
    /// A 5xx, a timeout or a reset (no HTTP status), a reply that did not verify (a 2xx with no
    /// verified code), a 408, a 429, a redirect, or an unsigned 401/403/407 from something in
    /// front of the server: the next run sends it again with a fresh `--max-attempts`. Also a
    /// verified code the protocol does not document under a 2xx: recorded as received that
    /// night, but it says nothing final, and the server may have assigned the key (the row is
    /// maybe delivered), so the next run's listing settles it.
    case passing

    /// HTTP statuses that a firewall, proxy or gateway answers without the license server:
    /// an unsigned one says nothing about the request itself.
    static let refusalStatuses: Set<Int> = [401, 403, 407]

    public init(httpStatus: Int?, code: Int?) {
        if let code {
            if let status = httpStatus, (200...299).contains(status), code != 800, code != 801 {
                self = .passing  // undocumented: it says nothing final
            } else {
                // Refused under an error status: the license server decided, and decides the same again.
                self = .final
            }
            return
        }
        guard let status = httpStatus else {
            self = .passing  // timeout, reset, no reply
            return
        }
        switch status {
        case 408, 429: self = .passing
        case _ where Self.refusalStatuses.contains(status): self = .passing
        case 400...499: self = .final
        default: self = .passing  // 2xx that did not verify, 3xx, 5xx
        }
    }
}

extension FailureKind {
    /// `failed` rows by kind, whole table: `final` ones wait for a person (`keyassign retry`),
    /// `passing` ones go out again at the next run. What `status` shows.
    public static func counts(in db: Database) throws -> (final: Int64, passing: Int64) {
        let statement = try db.prepare("SELECT last_http_status, last_code FROM work WHERE state = 'failed'")
        var final: Int64 = 0
        var passing: Int64 = 0
        while try statement.step() {
            let kind = FailureKind(
                httpStatus: statement.isNull(0) ? nil : Int(statement.int(0)),
                code: statement.isNull(1) ? nil : Int(statement.int(1)))
            if kind == .final { final += 1 } else { passing += 1 }
        }
        return (final, passing)
    }
}
