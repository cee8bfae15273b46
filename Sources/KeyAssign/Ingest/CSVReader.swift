#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A field separator keyassign understands.
public enum CSVDelimiter: String, Sendable, CaseIterable {
    case comma = ","
    case semicolon = ";"
    case tab = "\t"
    case pipe = "|"

    var byte: UInt8 { rawValue.utf8.first ?? UInt8(ascii: ",") }

    /// `,` `;` `|`, or `tab` / `\t` for a tab. `auto` is the caller's nil.
    public init?(argument: String) {
        switch argument {
        case ",", "comma": self = .comma
        case ";", "semicolon": self = .semicolon
        case "tab", "\t", "\\t": self = .tab
        case "|", "pipe": self = .pipe
        default: return nil
        }
    }

    init?(byte: UInt8) {
        guard let match = CSVDelimiter.allCases.first(where: { $0.byte == byte }) else { return nil }
        self = match
    }

    /// How a person would write it in a message.
    public var displayName: String { self == .tab ? "tab" : rawValue }
}

/// A streaming RFC 4180 reader over a file descriptor.
///
/// Why a hand-written byte-level state machine rather than a CSV library: the Swift CSV
/// libraries tried were several times slower (they build a Swift `String` per field and an
/// array per row; figures in docs/benchmarks.md), and one of them reports a false read error at
/// end of file on Linux.
/// The import must beat `sqlite3 .import` while doing more, so the reader never builds a
/// String: it reads fixed-size chunks with read(2) into one buffer, and a record's fields are
/// byte ranges into that buffer, handed straight to SQLite's bind calls. Only a record that
/// straddles two chunks is moved (to the front of the buffer, then parsed again whole), and
/// only a field with doubled quotes is copied (unescaped into a scratch buffer). Memory is
/// bounded by the chunk size plus the longest record allowed (`maxRecordBytes`), never by the
/// size of the file. Measured in `scripts/bench-import.sh` (see docs/benchmarks.md).
///
/// Dialect: quoted fields with doubled quotes, delimiters and line breaks inside quotes; LF,
/// CRLF and lone CR line ends; a UTF-8 BOM; Excel's `sep=X` first line; blank lines skipped;
/// no final newline needed. A malformed record (text after a closing quote, a quote never
/// closed, a record too long) is reported as such, covering only its first physical line, and
/// reading resumes on the next line, so that one stray quote costs one row, not the rest of
/// the file.
///
/// Use: `while try reader.next() { reader.line, reader.fieldCount, reader.field(i), reader.raw }`.
/// Field and raw views are valid until the next call to `next()`.
public final class CSVReader {
    public static let defaultChunkSize = 256 * 1024
    /// The longest record accepted, in bytes of UTF-8 (after decoding), its line end excluded.
    /// A longer one becomes an invalid row; the importer bounds each field far lower.
    public static let defaultMaxRecordBytes = 1 << 20
    /// How much of a too-long record's first line is kept as its raw text.
    static let previewBytes = 1024

    private let fd: Int32
    private let chunkSize: Int
    private let maxRecordBytes: Int
    private let buffer: UnsafeMutablePointer<UInt8>
    private let capacity: Int
    private let scratch: UnsafeMutablePointer<UInt8>
    /// Valid bytes are buffer[start..<end]; `start` is where the next record begins.
    private var start = 0
    private var end = 0
    private var eof = false
    private var started = false
    private var nextLine = 1
    /// Skipping the rest of an overlong line that did not fit in the buffer.
    private var discarding = false
    private var digest: SHA256Digest?
    /// Decodes a file that is not UTF-8; nil for UTF-8 (read straight into the buffer).
    private let transcoder: Transcoder?

    /// The delimiter in use: the one given, else the one detected on the first line.
    public private(set) var delimiter: UInt8
    private let delimiterGiven: Bool
    /// True when the file declared its delimiter with Excel's `sep=` line.
    public private(set) var sawSepLine = false

    // The current record.
    public private(set) var line = 0
    private var fieldStarts: [Int] = []
    private var fieldEnds: [Int] = []
    /// Fields that had doubled quotes point into `scratch`, marked by a negative start.
    private var rawStart = 0
    private var rawEnd = 0
    /// Why the current record is malformed, or nil.
    public private(set) var malformation: String?
    /// Total bytes read from the file so far.
    public private(set) var bytesRead: Int64 = 0

    /// Reads from `fd` (not closed by the reader). With `digest`, every byte read is hashed.
    /// `encoding`: what the file's bytes are; a BOM is the caller's to detect (its decoded
    /// U+FEFF is then stripped here like UTF-8's).
    public init(
        fileDescriptor fd: Int32, delimiter: CSVDelimiter?, digest: SHA256Digest? = nil,
        chunkSize: Int = CSVReader.defaultChunkSize, maxRecordBytes: Int = CSVReader.defaultMaxRecordBytes,
        encoding: InputEncoding = .utf8
    ) {
        self.fd = fd
        self.chunkSize = max(16, chunkSize)
        self.maxRecordBytes = max(16, maxRecordBytes)
        // Decoding needs room for a chunk's worst-case growth beyond the chunk itself; the
        // limits above do not change with it.
        self.capacity = self.maxRecordBytes + self.chunkSize + (encoding == .utf8 ? 0 : 64)
        self.buffer = .allocate(capacity: capacity)
        self.scratch = .allocate(capacity: capacity)
        self.delimiter = delimiter?.byte ?? UInt8(ascii: ",")
        self.delimiterGiven = delimiter != nil
        self.digest = digest
        self.transcoder = encoding == .utf8 ? nil : Transcoder(encoding: encoding, inputCapacity: self.chunkSize)
        fieldStarts.reserveCapacity(32)
        fieldEnds.reserveCapacity(32)
    }

    deinit {
        buffer.deallocate()
        scratch.deallocate()
    }

    public var fieldCount: Int { fieldStarts.count }

    /// The field's bytes, unquoted and unescaped (not trimmed).
    @inline(__always)
    public func field(_ index: Int) -> UnsafeRawBufferPointer {
        let s = fieldStarts[index]
        let e = fieldEnds[index]
        if s < 0 {
            return UnsafeRawBufferPointer(start: scratch + (-s - 1), count: e)
        }
        return UnsafeRawBufferPointer(start: buffer + s, count: e - s)
    }

    /// The record's bytes as they are in the file, without its line end.
    public var raw: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: buffer + rawStart, count: rawEnd - rawStart)
    }

    // MARK: Reading

    /// Moves to the next record; false at the end of the file. Throws only on a read error.
    public func next() throws -> Bool {
        if !started {
            started = true
            try prepareFirstLine()
        }
        while true {
            if discarding {
                if try !discardRestOfLine() { return false }
                continue
            }
            if start == end {
                if eof { return false }
                try fill()
                continue
            }
            switch parseRecord() {
            case .record:
                if rawEnd - rawStart > maxRecordBytes {
                    // Parsed whole because a refill brought it in, but over the limit all the
                    // same: the limit must not depend on where the chunk edges fell.
                    start = rawStart
                    nextLine = line
                    tooLongRecord()
                }
                return true
            case .blank:
                continue
            case .needMore:
                // A record of at most `maxRecordBytes` is decided within that many bytes plus
                // its line end (CR LF), so more than that still undecided is too long.
                if end - start >= maxRecordBytes + 2 {
                    tooLongRecord()
                    return true
                }
                if eof {
                    // Only a quote never closed leaves a record open at the end of the file.
                    if end - start > maxRecordBytes {
                        tooLongRecord()
                    } else {
                        malformedFirstLine("unbalanced quote: a quoted field is never closed")
                    }
                    return true
                }
                try fill()
            case .malformed(let reason, let at):
                // Seen this far from the record's start, it could as well have been cut for
                // its length first, depending on the chunk edges: it is too long.
                if at - start > maxRecordBytes {
                    tooLongRecord()
                    return true
                }
                // It is reported as its whole first line and reading resumes after that line,
                // so read on until the line's end is in: cut at a chunk edge, the rest of the
                // line would be read as a row of its own, a line later.
                guard let lineEnd = firstLineEnd() else {
                    if end - start < maxRecordBytes + 2 {
                        try fill()
                        continue
                    }
                    tooLongRecord()
                    return true
                }
                if lineEnd - start > maxRecordBytes {
                    tooLongRecord()
                } else {
                    malformedFirstLine(reason)
                }
                return true
            }
        }
    }

    /// Reads one more chunk after the unparsed bytes, moving them to the front first.
    private func fill() throws {
        if start > 0 {
            let pending = end - start
            if pending > 0 { memmove(buffer, buffer + start, pending) }
            end = pending
            start = 0
        }
        if let transcoder { return try fillDecoding(transcoder, room: capacity - end) }
        let room = min(chunkSize, capacity - end)
        guard room > 0 else { return }
        while true {
            let n = read(fd, buffer + end, room)
            if n < 0 {
                if errno == EINTR { continue }
                throw ReadError(errno: errno)
            }
            if n == 0 {
                eof = true
            } else {
                digest?.update(UnsafeRawBufferPointer(start: buffer + end, count: n))
                end += n
                bytesRead += Int64(n)
            }
            return
        }
    }

    /// `fill` for a file that is not UTF-8: raw bytes are hashed and counted as read, their
    /// UTF-8 goes into the buffer. Reads again while a read brought only part of a character.
    private func fillDecoding(_ transcoder: Transcoder, room: Int) throws {
        while true {
            let limit = transcoder.readLimit(room: room)
            guard limit > 0 else { return }
            let n = read(fd, transcoder.readPointer, limit)
            if n < 0 {
                if errno == EINTR { continue }
                throw ReadError(errno: errno)
            }
            if n == 0 {
                eof = true
                end += transcoder.finish(into: buffer + end)
                return
            }
            digest?.update(UnsafeRawBufferPointer(start: transcoder.readPointer, count: n))
            bytesRead += Int64(n)
            let produced = transcoder.decode(newBytes: n, into: buffer + end)
            end += produced
            if produced > 0 { return }
        }
    }

    public struct ReadError: Error, CustomStringConvertible {
        public var errno: Int32
        public var description: String { String(cString: strerror(errno)) }
    }

    /// Strips a BOM, honours `sep=X`, and detects the delimiter on the header line.
    private func prepareFirstLine() throws {
        // Enough bytes for the BOM and a whole typical header line.
        while !eof && end < min(capacity, 64 * 1024) {
            let before = end
            try fill()
            if end == before && !eof { break }  // the buffer has no room left for a decoded chunk
        }
        if end - start >= 3 && buffer[start] == 0xEF && buffer[start + 1] == 0xBB && buffer[start + 2] == 0xBF {
            start += 3
        }
        if let sep = sepLine() {
            delimiter = sep.delimiter
            sawSepLine = true
            start = sep.next
            nextLine += 1
            return
        }
        if !delimiterGiven { delimiter = detectDelimiter() }
    }

    /// Excel's `sep=;` line (also quoted, as some tools write it), and where the next line starts.
    private func sepLine() -> (delimiter: UInt8, next: Int)? {
        var i = start
        var quoted = false
        if i < end && buffer[i] == UInt8(ascii: "\"") {
            quoted = true
            i += 1
        }
        for expected in "sep=".utf8 {
            guard i < end else { return nil }
            let byte = buffer[i]
            let lowered = byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte | 0x20 : byte
            guard lowered == expected else { return nil }
            i += 1
        }
        guard i < end else { return nil }
        let candidate = buffer[i]
        i += 1
        if quoted {
            guard i < end, buffer[i] == UInt8(ascii: "\"") else { return nil }
            i += 1
        }
        // The line must end right there.
        if i < end && buffer[i] == UInt8(ascii: "\r") {
            i += 1
            if i < end && buffer[i] == UInt8(ascii: "\n") { i += 1 }
        } else if i < end && buffer[i] == UInt8(ascii: "\n") {
            i += 1
        } else if i < end {
            return nil
        }
        guard candidate != UInt8(ascii: "\""), candidate != UInt8(ascii: "\n"), candidate != UInt8(ascii: "\r") else {
            return nil
        }
        return (candidate, i)
    }

    /// The candidate (`,` `;` tab `|`) seen most often outside quotes on the first non-blank
    /// line; a comma when none appears (a one-column file). Quotes are read as the parser reads
    /// them: only a quote that starts a field opens a quoted field (a header like `screen 12"`
    /// keeps its quote as data), and `""` inside one is an escaped quote.
    private func detectDelimiter() -> UInt8 {
        let quote = UInt8(ascii: "\"")
        let candidates: [UInt8] = [UInt8(ascii: ","), UInt8(ascii: ";"), UInt8(ascii: "\t"), UInt8(ascii: "|")]
        var counts = [Int](repeating: 0, count: candidates.count)
        var i = start
        while i < end && (buffer[i] == UInt8(ascii: "\n") || buffer[i] == UInt8(ascii: "\r")) { i += 1 }
        let lineStart = i
        var inQuotes = false
        while i < end {
            let byte = buffer[i]
            if inQuotes {
                if byte == quote {
                    if i + 1 < end && buffer[i + 1] == quote {
                        i += 2
                        continue
                    }
                    inQuotes = false
                }
            } else if byte == quote {
                if i == lineStart || candidates.contains(buffer[i - 1]) { inQuotes = true }
            } else {
                if byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\r") { break }
                if let index = candidates.firstIndex(of: byte) { counts[index] += 1 }
            }
            i += 1
        }
        var best = 0
        for index in counts.indices where counts[index] > counts[best] { best = index }
        return counts[best] > 0 ? candidates[best] : UInt8(ascii: ",")
    }

    private enum ParseResult {
        case record
        case blank
        case needMore
        /// Why, and where in the buffer it showed.
        case malformed(String, at: Int)
    }

    /// Parses one whole record at `start`, or says more bytes are needed (then it is parsed
    /// again from its start once they are in: simpler and as fast as resumable state, since
    /// at most one record per chunk straddles).
    @inline(__always)
    private func parseRecord() -> ParseResult {
        let quote = UInt8(ascii: "\"")
        let cr = UInt8(ascii: "\r")
        let lf = UInt8(ascii: "\n")
        let space = UInt8(ascii: " ")
        let delim = delimiter
        let buf = buffer
        let end = self.end
        let eof = self.eof
        var i = start
        var breaks = 0
        var scratchUsed = 0
        fieldStarts.removeAll(keepingCapacity: true)
        fieldEnds.removeAll(keepingCapacity: true)

        // Blank line: skipped, but counted.
        if buf[i] == lf || buf[i] == cr {
            if buf[i] == cr {
                if i + 1 >= end && !eof { return .needMore }
                if i + 1 < end && buf[i + 1] == lf { i += 1 }
            }
            start = i + 1
            nextLine += 1
            return .blank
        }

        while true {
            // One field starts at i. Spaces before an opening quote are tolerated (some
            // exporters write `, "Doe, Jane"`); spaces before anything else are data.
            var q = i
            while q < end && buf[q] == space { q += 1 }
            if q >= end && !eof { return .needMore }
            if q < end && buf[q] == quote { i = q }
            if i < end && buf[i] == quote {
                i += 1
                let contentStart = i
                var escaped = false
                while true {
                    // Scan the quoted content up to the next quote, counting line breaks.
                    while i < end {
                        let byte = buf[i]
                        if byte == quote { break }
                        if byte == lf {
                            if i == contentStart || buf[i - 1] != cr { breaks += 1 }
                        } else if byte == cr {
                            breaks += 1
                        }
                        i += 1
                    }
                    if i >= end { return .needMore }
                    // A quote: doubled (escaped) or closing.
                    if i + 1 >= end {
                        if !eof { return .needMore }
                        break
                    }
                    if buf[i + 1] == quote {
                        escaped = true
                        i += 2
                        continue
                    }
                    break
                }
                let contentEnd = i
                i += 1  // the closing quote
                if escaped {
                    // Unescape "" into the scratch buffer; the raw bytes stay intact.
                    var j = contentStart
                    let out = scratchUsed
                    while j < contentEnd {
                        scratch[scratchUsed] = buf[j]
                        scratchUsed += 1
                        j += buf[j] == quote ? 2 : 1
                    }
                    fieldStarts.append(-out - 1)
                    fieldEnds.append(scratchUsed - out)
                } else {
                    fieldStarts.append(contentStart)
                    fieldEnds.append(contentEnd)
                }
                if i >= end {
                    if !eof { return .needMore }
                    finish(recordStart: start, rawEnd: i, next: i, breaks: breaks)
                    return .record
                }
                // Spaces after a closing quote are tolerated too.
                while i < end && buf[i] == space { i += 1 }
                if i >= end {
                    if !eof { return .needMore }
                    finish(recordStart: start, rawEnd: i, next: i, breaks: breaks)
                    return .record
                }
                let after = buf[i]
                if after == delim {
                    i += 1
                    continue
                }
                if after != lf && after != cr {
                    return .malformed("unexpected text after a closing quote (column \(fieldStarts.count))", at: i)
                }
            } else {
                let fieldStart = i
                while i < end {
                    let byte = buf[i]
                    if byte == delim || byte == lf || byte == cr { break }
                    i += 1
                }
                if i >= end && !eof { return .needMore }
                fieldStarts.append(fieldStart)
                fieldEnds.append(i)
                if i >= end {
                    finish(recordStart: start, rawEnd: i, next: i, breaks: breaks)
                    return .record
                }
                if buf[i] == delim {
                    i += 1
                    continue
                }
            }
            // A line end at i closes the record.
            let rawEnd = i
            if buf[i] == cr {
                if i + 1 >= end && !eof { return .needMore }
                if i + 1 < end && buf[i + 1] == lf { i += 1 }
            }
            finish(recordStart: start, rawEnd: rawEnd, next: i + 1, breaks: breaks + 1)
            return .record
        }
    }

    @inline(__always)
    private func finish(recordStart: Int, rawEnd: Int, next: Int, breaks: Int) {
        rawStart = recordStart
        self.rawEnd = rawEnd
        line = nextLine
        nextLine += breaks
        start = next
        malformation = nil
    }

    /// Where the first physical line of the record at `start` ends (its line end excluded), if
    /// that line end is in the buffer.
    private func firstLineEnd() -> Int? {
        var i = start
        while i < end {
            if buffer[i] == UInt8(ascii: "\n") || buffer[i] == UInt8(ascii: "\r") { return i }
            i += 1
        }
        return eof ? end : nil
    }

    /// Reports the record's first physical line as malformed and resumes after it.
    private func malformedFirstLine(_ reason: String) {
        let lineEnd = firstLineEnd() ?? end
        fieldStarts.removeAll(keepingCapacity: true)
        fieldEnds.removeAll(keepingCapacity: true)
        rawStart = start
        rawEnd = lineEnd
        line = nextLine
        // The line end stays for the next parse, which takes it as a blank line: that counts
        // the line, and tells CRLF from a lone CR even when the LF is not read yet (consumed
        // here, a CR last in the buffer would leave its LF to count as one more line).
        start = lineEnd
        malformation = reason
    }

    /// A record longer than `maxRecordBytes` (its first line or all of it), whichever way it
    /// was found: reported with at most the first `previewBytes` of its first line, and reading
    /// resumes after that line, as for any malformed record. The same whatever the chunk size
    /// (the fuzzer checks it), so a file imports the same on every machine.
    private func tooLongRecord() {
        let preview = min(Self.previewBytes, maxRecordBytes)
        fieldStarts.removeAll(keepingCapacity: true)
        fieldEnds.removeAll(keepingCapacity: true)
        rawStart = start
        line = nextLine
        malformation = "record longer than the limit of \(maxRecordBytes) bytes"
        if let lineEnd = firstLineEnd() {
            rawEnd = start + min(preview, lineEnd - start)
            // As in malformedFirstLine: the line end is left to be counted as a blank line.
            start = lineEnd
        } else {
            // The line's end is not even in the buffer: skip to it.
            rawEnd = start + min(preview, end - start)
            nextLine += 1
            start = end
            discarding = true
        }
    }

    /// Drops bytes up to and including the next line end; false at end of file.
    private func discardRestOfLine() throws -> Bool {
        while true {
            var i = start
            while i < end && buffer[i] != UInt8(ascii: "\n") && buffer[i] != UInt8(ascii: "\r") { i += 1 }
            if i < end {
                if buffer[i] == UInt8(ascii: "\r") {
                    if i + 1 >= end && !eof {
                        start = i
                        try fill()
                        continue
                    }
                    if i + 1 < end && buffer[i + 1] == UInt8(ascii: "\n") { i += 1 }
                }
                start = i + 1
                discarding = false
                return true
            }
            start = end
            if eof { return false }
            try fill()
        }
    }
}
