#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// `--map-file PATH`: column mappings chosen by file-name pattern, for a folder that holds
/// exports of several systems. The format (docs in the README, "Columns"):
///
/// ```
/// # comment
/// [shop-*.csv]
/// owner_name = Customer
/// email = Billing Email
///
/// [newsletter-*.csv]
/// allow_missing = owner_name
/// ```
///
/// A section's pattern is a shell glob (fnmatch) matched against the file's name, or against
/// its whole path when the pattern holds a `/`. The first section that matches a file is its
/// mapping; it overrides `--map` field by field, and a column it names must be in that file
/// (it was chosen for it). A file no section matches gets `--map` and recognition.
public struct ColumnMapFile: Sendable, Equatable {
    public struct Section: Sendable, Equatable {
        public var pattern: String
        public var map: [ImportField: String] = [:]
        public var allowMissing: Set<ImportField> = []
        /// Where the section starts, for messages.
        public var line: Int
    }

    public var path: String
    public var sections: [Section]

    public init(path: String, sections: [Section]) {
        self.path = path
        self.sections = sections
    }

    /// Parses `text`; errors name the file and line (exit 64, like a bad `--map`).
    public static func parse(_ text: String, path: String) throws -> ColumnMapFile {
        var sections: [Section] = []
        for (offset, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let number = offset + 1
            let line = rawLine.trimmingCharacters(in: [" ", "\t", "\r"])
            if line.isEmpty || line.hasPrefix("#") { continue }
            func fail(_ why: String) -> KeyAssignError {
                KeyAssignError(.usage, "--map-file \(path):\(number): \(why): \(line)")
            }
            if line.hasPrefix("[") {
                guard line.hasSuffix("]"), line.count > 2 else { throw fail("expected [PATTERN]") }
                sections.append(
                    Section(
                        pattern: String(line.dropFirst().dropLast()).trimmingCharacters(in: [" ", "\t"]),
                        line: number))
                continue
            }
            guard let equals = line.firstIndex(of: "=") else { throw fail("expected FIELD = COLUMN") }
            guard !sections.isEmpty else { throw fail("a mapping before the first [PATTERN] line") }
            let name = line[..<equals].trimmingCharacters(in: [" ", "\t"])
            let value = line[line.index(after: equals)...].trimmingCharacters(in: [" ", "\t"])
            guard !value.isEmpty else { throw fail("empty value") }
            if name == "allow_missing" || name == "allow-missing" {
                for item in value.split(separator: ",") {
                    let fieldName = item.trimmingCharacters(in: [" ", "\t"])
                    guard let field = ImportField(rawValue: fieldName), field == .ownerName || field == .email else {
                        throw fail("allow_missing takes owner_name or email, not '\(fieldName)'")
                    }
                    sections[sections.count - 1].allowMissing.insert(field)
                }
                continue
            }
            guard let field = ImportField(rawValue: name) else {
                throw fail(
                    "unknown field '\(name)'; fields: \(ImportField.allCases.map(\.rawValue).joined(separator: ", ")), allow_missing"
                )
            }
            sections[sections.count - 1].map[field] = value
        }
        return ColumnMapFile(path: path, sections: sections)
    }

    /// Reads and parses the file at `path`.
    public static func load(_ path: String) throws -> ColumnMapFile {
        guard let bytes = readAll(path) else {
            throw KeyAssignError(.usage, "--map-file \(path): cannot read: \(String(cString: strerror(errno)))")
        }
        var text = String(decoding: bytes, as: UTF8.self)
        if text.hasPrefix("\u{FEFF}") { text.removeFirst() }
        return try parse(text, path: path)
    }

    /// The section for the file at `path`, if one matches.
    public func section(for path: String) -> Section? {
        let name = path.split(separator: "/").last.map(String.init) ?? path
        return sections.first { section in
            let subject = section.pattern.contains("/") ? path : name
            return fnmatch(section.pattern, subject, 0) == 0
        }
    }

    private static func readAll(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { return nil }
            if n == 0 { return bytes }
            bytes += chunk[0..<n]
            if bytes.count > 1 << 20 {
                errno = EFBIG
                return nil
            }
        }
    }
}
