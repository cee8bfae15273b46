/// `keyassign verify`: checks reply files saved earlier (from the database, a log, a support
/// ticket) against the configured public keys, one result line per file.
///
/// Output, one line per file, tab-separated so that `cut`/`awk` can take it apart:
/// `FILE<TAB>VERDICT<TAB>REASON<TAB>CODE`, where VERDICT is `trusted` or `untrusted`, REASON
/// is `ok`, an `UntrustedReason` raw value or `unreadable`, and CODE is the signed code or
/// `-`. Why a reply is untrusted goes to stderr, for people.
///
/// Exit status: 0 every reply trusted; 1 some signature invalid, missing, unsigned, from an
/// unknown key, or some file unreadable (a reply nobody could check is not trusted, and
/// the other files are still checked); 2 every signature holds but some signed payload is
/// unusable, differs from `response`, or is stale; 64 a key file is unreadable or unsupported.
public struct StoredReplyCheck: Sendable {
    public struct Line: Sendable, Equatable {
        public var file: String
        public var trusted: Bool
        public var reason: String
        public var code: Int?
        /// Why, for stderr; nil when trusted.
        public var detail: String?

        /// The stdout line. Control characters in file names would break the columns.
        public var text: String {
            let verdict = trusted ? "trusted" : "untrusted"
            return
                "\(ReplyVerifier.printable(file, limit: Int.max))\t\(verdict)\t\(reason)\t\(code.map(String.init) ?? "-")"
        }
    }

    /// Stored replies are a few hundred bytes; anything past this is not a reply.
    static let maximumReplySize = 1 << 20

    private let verifier: ReplyVerifier
    private let maxAge: Double?

    /// Loads the keys (`NAME=PATH` or `PATH`, see `KeyRing.init(specs:)`). A bad key is a
    /// usage error (64) here: the person typing the command gave the wrong file.
    public init(publicKeySpecs: [String], maxAge: Double?) throws {
        guard !publicKeySpecs.isEmpty else {
            throw KeyAssignError(.usage, "give at least one --public-key [NAME=]PATH")
        }
        if let maxAge, !(maxAge >= 0 && maxAge.isFinite) {
            throw KeyAssignError(.usage, "--max-age must be a number of seconds, 0 or more")
        }
        do {
            verifier = ReplyVerifier(keyRing: try KeyRing(specs: publicKeySpecs))
        } catch let error as KeyAssignError {
            throw KeyAssignError(.usage, error.message)
        }
        self.maxAge = maxAge
    }

    public func check(_ file: String, now: Double = Timestamps.now()) -> Line {
        let bytes: [UInt8]
        switch SmallFile.contents(of: file, limit: Self.maximumReplySize) {
        case .success(let read): bytes = read
        case .failure(let failure):
            return Line(file: file, trusted: false, reason: "unreadable", code: nil, detail: failure.description)
        }
        switch verifier.verify(bytes, maxAge: maxAge, now: now) {
        case .trusted(let payload):
            return Line(file: file, trusted: true, reason: "ok", code: payload.code, detail: nil)
        case .untrusted(let reason, let detail):
            return Line(file: file, trusted: false, reason: reason.rawValue, code: nil, detail: detail)
        }
    }

    public func check(files: [String], now: Double = Timestamps.now()) -> (lines: [Line], status: ExitStatus) {
        let lines = files.map { check($0, now: now) }
        return (lines, Self.status(of: lines))
    }

    /// The worse outcome wins: an unattributable reply (1) over a signed but unusable one (2).
    static func status(of lines: [Line]) -> ExitStatus {
        var status = ExitStatus.ok
        for line in lines where !line.trusted {
            let isPayloadProblem = UntrustedReason(rawValue: line.reason).map { !$0.isSignatureProblem } ?? false
            if !isPayloadProblem { return .someFailed }
            status = .payloadMismatch
        }
        return status
    }
}
