// libFuzzer harness for the import's front end: CSVReader, then the header mapping and the
// per-field checks the importer runs on what it reads. Built by scripts/fuzz against the
// KeyAssign target, itself built under the sanitizers with testing enabled, so internal API
// is reachable through @testable.
//
// The unit tests check the reader against inputs someone thought of; this checks properties
// that must hold for every input, so coverage feedback can look for the inputs nobody did.
// A broken property aborts with a message, which libFuzzer records as a crash with its input.

import COpenSSL

@testable import KeyAssign

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

private struct Record: Equatable {
    var line: Int
    var fields: [[UInt8]]
    var malformation: String?
    var raw: [UInt8]
}

private func describe(_ record: Record) -> String {
    let fields = record.fields.map { String(decoding: $0, as: UTF8.self).debugDescription }
    return
        "line \(record.line) \(record.malformation ?? "ok") [\(fields.joined(separator: ", "))] raw \(String(decoding: record.raw, as: UTF8.self).debugDescription)"
}

private struct Parse {
    var records: [Record]
    var delimiter: UInt8
    var sawSepLine: Bool
}

// CSVReader reads a file descriptor, as the importer gives it one. One unlinked temporary
// file, rewritten for each input, is cheaper than a file per input, and unlike a pipe it
// never blocks on an input larger than the pipe's buffer.
nonisolated(unsafe) private var inputFile: Int32 = -1

private func openInputFile() -> Int32 {
    if inputFile >= 0 { return inputFile }
    var template = Array("/tmp/keyassign-csvfuzz.XXXXXX".utf8CString)
    let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
    guard fd >= 0 else { fail("mkstemp: \(String(cString: strerror(errno)))") }
    template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
    inputFile = fd
    return fd
}

private func store(_ bytes: UnsafeRawBufferPointer, in fd: Int32) {
    guard ftruncate(fd, 0) == 0 else { fail("ftruncate: \(String(cString: strerror(errno)))") }
    var done = 0
    while done < bytes.count {
        let n = pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(done))
        guard n > 0 else { fail("pwrite: \(String(cString: strerror(errno)))") }
        done += n
    }
}

private func sha256Hex(_ bytes: UnsafeRawBufferPointer) -> String {
    var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
    var length: UInt32 = 0
    guard EVP_Digest(bytes.baseAddress, bytes.count, &out, &length, EVP_sha256(), nil) == 1 else {
        fail("EVP_Digest failed")
    }
    return Hex.encode(out.prefix(Int(length)))
}

/// Reads the whole file and checks what must hold whatever the chunking: every record starts
/// on a later line than the one before (a record consumes at least one physical line, so a
/// repeated or smaller number would point a person at the wrong row), and every byte is read
/// and hashed (the import's file digest must cover exactly what was imported).
private func parse(
    _ fd: Int32, _ input: UnsafeRawBufferPointer, delimiter: CSVDelimiter?, chunkSize: Int,
    maxRecordBytes: Int = CSVReader.defaultMaxRecordBytes, encoding: InputEncoding = .utf8
) -> Parse {
    guard lseek(fd, 0, SEEK_SET) == 0 else { fail("lseek: \(String(cString: strerror(errno)))") }
    let digest: SHA256Digest
    do { digest = try SHA256Digest() } catch { fail("SHA256Digest: \(error)") }
    let reader = CSVReader(
        fileDescriptor: fd, delimiter: delimiter, digest: digest, chunkSize: chunkSize, maxRecordBytes: maxRecordBytes,
        encoding: encoding)
    let context =
        "chunk \(chunkSize), max record \(maxRecordBytes), delimiter \(delimiter?.displayName ?? "auto"), \(encoding.displayName)"
    var records: [Record] = []
    do {
        while try reader.next() {
            if let last = records.last, reader.line <= last.line {
                fail("\(context): record at line \(reader.line) follows one at line \(last.line)")
            }
            let fields = (0..<reader.fieldCount).map { Array(reader.field($0)) }
            let raw = Array(reader.raw)
            if let malformation = reader.malformation {
                // Over the limit or not, the limit holds: nothing longer is ever handed on.
                if malformation.contains("longer than") && raw.count > min(1024, maxRecordBytes) {
                    fail("\(context): the too-long record at line \(reader.line) keeps \(raw.count) bytes")
                }
                // A malformed record is reported as its first physical line only.
                if !fields.isEmpty {
                    fail("\(context): malformed record at line \(reader.line) has \(fields.count) fields")
                }
                if raw.contains(0x0A) || raw.contains(0x0D) {
                    fail("\(context): malformed record at line \(reader.line) spans lines")
                }
            } else {
                if raw.count > maxRecordBytes {
                    fail("\(context): record at line \(reader.line) of \(raw.count) bytes passed the limit")
                }
                if fields.isEmpty { fail("\(context): record at line \(reader.line) has no fields") }
                // Without quotes there is nothing to unescape: the fields, joined with the
                // delimiter, must be the record's bytes exactly.
                if !raw.contains(UInt8(ascii: "\"")) {
                    let joined = Array(fields.joined(separator: [reader.delimiter]))
                    if joined != raw {
                        fail("\(context): fields of line \(reader.line) do not rejoin to its raw bytes")
                    }
                }
            }
            records.append(Record(line: reader.line, fields: fields, malformation: reader.malformation, raw: raw))
        }
    } catch {
        fail("\(context): read error on a regular file: \(error)")
    }
    if reader.bytesRead != Int64(input.count) { fail("\(context): read \(reader.bytesRead) of \(input.count) bytes") }
    if digest.finalHex() != sha256Hex(input) { fail("\(context): the digest does not cover exactly the bytes read") }
    return Parse(records: records, delimiter: reader.delimiter, sawSepLine: reader.sawSepLine)
}

/// What RowValidation.problem must mean, written the slow, obvious way: valid UTF-8 with no
/// C0 control (tab, LF and CR aside when allowed), no DEL and no C1 control.
private func referenceAcceptsField(_ bytes: [UInt8], allowLineBreaks: Bool) -> Bool {
    guard let text = String(validating: bytes, as: UTF8.self) else { return false }
    return text.unicodeScalars.allSatisfy { scalar in
        let v = scalar.value
        if allowLineBreaks && (v == 0x09 || v == 0x0A || v == 0x0D) { return true }
        return !(v < 0x20 || v == 0x7F || (0x80...0x9F).contains(v))
    }
}

private func checkRowChecks(_ parsed: Parse) {
    guard let header = parsed.records.first(where: { $0.malformation == nil }) else { return }
    let headers = header.fields.map { field in
        field.withUnsafeBytes { String(decoding: RowValidation.trim($0), as: UTF8.self) }
    }
    if case .success(let mapping) = ColumnMapping.resolve(headers: headers, overrides: [:]) {
        let used = [mapping.licenseKey, mapping.ownerName, mapping.firstName, mapping.lastName, mapping.email]
            .compactMap { $0 }
        if Set(used).count != used.count || used.contains(where: { $0 < 0 || $0 >= headers.count }) {
            fail("ColumnMapping maps \(used) for \(headers.count) headers")
        }
        _ = mapping.summary
    }
    for record in parsed.records {
        for field in record.fields {
            field.withUnsafeBytes { bytes in
                for allow in [false, true] {
                    let problem = RowValidation.problem(in: bytes, allowLineBreaks: allow)
                    if (problem == nil) != referenceAcceptsField(field, allowLineBreaks: allow) {
                        fail(
                            "RowValidation.problem(allowLineBreaks: \(allow)) says \(String(describing: problem)) for \(field)"
                        )
                    }
                    if let problem { _ = RowValidation.describe(problem, column: "c") }
                }
                let trimmed = RowValidation.trim(bytes)
                if let first = trimmed.first, let last = trimmed.last,
                    RowValidation.isSpace(first) || RowValidation.isSpace(last)
                {
                    fail("trim left whitespace at an end of \(field)")
                }
                _ = RowValidation.emailProblem(trimmed)
                _ = RowValidation.ownerTooLong(trimmed)
            }
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCSVReader(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let input = UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : size)
    let fd = openInputFile()
    store(input, in: fd)

    // The reference reading: buffers larger than the input, so it is read in one go and no
    // record can be too long.
    let whole = max(16, size + 16)
    let reference = parse(fd, input, delimiter: nil, chunkSize: whole, maxRecordBytes: whole)
    checkRowChecks(reference)

    // Chunk edges must not change what is read, not even where the record limit cuts: a
    // record over the limit is refused wherever the edges fall. The reader first fills its
    // whole buffer (chunk size plus maximum record size, up to 64 KiB), so edges only fall
    // inside an input larger than that: hence a 256-byte maximum record, against a reading
    // in one go with the same limit. Chunk sizes straddle the limit (255, 257), take the
    // smallest (16: an edge inside nearly every field, quote pair and CRLF) and one picked by
    // the input's size, so that over a run every size from 16 to 315 is tried. The delimiter is
    // the reference's: detection sees only the first buffer, and that this cuts it short
    // here, not at 64 KiB, is no bug.
    let detected = reference.sawSepLine ? nil : CSVDelimiter(byte: reference.delimiter)
    let limited = parse(fd, input, delimiter: detected, chunkSize: whole, maxRecordBytes: 256)
    for chunk in [16, 255, 257, 16 + size % 300] {
        let chunked = parse(fd, input, delimiter: detected, chunkSize: chunk, maxRecordBytes: 256)
        compare(chunked, limited, "chunk \(chunk)")
    }

    // A tiny maximum record size drives the overlong-line and runaway-quote paths, and a given
    // delimiter (picked from the input's size, so the same input always takes the same one)
    // skips detection; here only the per-read invariants in `parse` apply.
    let given: CSVDelimiter? = size % 5 == 4 ? nil : CSVDelimiter.allCases[size % 5]
    for chunk in [16, 64] {
        _ = parse(fd, input, delimiter: given, chunkSize: chunk, maxRecordBytes: 16)
    }

    // Every other encoding: the same text, encoded, must read as the same records (it is
    // decoded to the same UTF-8 under the parser), whatever the chunking; and any bytes at
    // all, read as each encoding, must keep the per-read invariants. Last, since it rewrites
    // the input file.
    if let text = String(validating: Array(input), as: UTF8.self) {
        for (index, encoding) in InputEncoding.allCases.enumerated() where encoding != .utf8 {
            guard let encoded = encode(text, encoding) else { continue }
            store(encoded, in: fd)
            // One chunk size per encoding, moved by the input's size (inputs are many).
            let chunk = 16 + (size + 37 * index) % 300
            encoded.withUnsafeBytes { bytes in
                let decoded = parse(
                    fd, bytes, delimiter: detected, chunkSize: chunk, maxRecordBytes: 256, encoding: encoding)
                compare(decoded, limited, "\(encoding.displayName), chunk \(chunk)")
            }
        }
    }
    store(input, in: fd)
    let others = InputEncoding.allCases.filter { $0 != .utf8 }
    _ = parse(
        fd, input, delimiter: given, chunkSize: 16 + size % 64, maxRecordBytes: 64,
        encoding: others[size % others.count])
    return 0
}

private func store(_ bytes: [UInt8], in fd: Int32) {
    bytes.withUnsafeBytes { store($0, in: fd) }
}

private func compare(_ got: Parse, _ expected: Parse, _ what: String) {
    for index in 0..<max(got.records.count, expected.records.count) {
        let a = index < got.records.count ? got.records[index] : nil
        let b = index < expected.records.count ? expected.records[index] : nil
        if a != b {
            fail(
                "\(what): record \(index) is \(a.map(describe) ?? "missing"); read in one go as UTF-8 it is \(b.map(describe) ?? "missing")"
            )
        }
    }
}

/// `text` in `encoding`, written the slow, obvious way; nil when it cannot be encoded.
private func encode(_ text: String, _ encoding: InputEncoding) -> [UInt8]? {
    var out: [UInt8] = []
    for scalar in text.unicodeScalars {
        let v = scalar.value
        switch encoding {
        case .utf8: return nil  // the input itself
        case .iso88591:
            guard v <= 0xFF else { return nil }
            out.append(UInt8(v))
        case .windows1252:
            if v < 0x80 || (0xA0...0xFF).contains(v) {
                out.append(UInt8(v))
            } else if let index = Transcoder.cp1252High.firstIndex(of: UInt16(truncatingIfNeeded: v)), v <= 0xFFFF {
                out.append(UInt8(0x80 + index))
            } else {
                return nil
            }
        case .utf16le, .utf16be:
            // No String per scalar: under AddressSanitizer that was most of an input's time.
            let units: [UInt32] =
                v < 0x10000 ? [v] : [0xD800 + ((v - 0x10000) >> 10), 0xDC00 + ((v - 0x10000) & 0x3FF)]
            for unit in units {
                let pair = [UInt8(unit & 0xFF), UInt8(unit >> 8)]
                out += encoding == .utf16le ? pair : pair.reversed()
            }
        case .utf32le, .utf32be:
            let quad = [UInt8(v & 0xFF), UInt8((v >> 8) & 0xFF), UInt8((v >> 16) & 0xFF), UInt8(v >> 24)]
            out += encoding == .utf32le ? quad : quad.reversed()
        }
    }
    return out
}
