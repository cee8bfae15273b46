import Foundation
import Testing

@testable import KeyAssign

enum ReaderHarness {
    /// Parses `bytes` through a real file descriptor; chunk sizes vary to move chunk edges
    /// through every record.
    static func parse(
        _ bytes: [UInt8], delimiter: CSVDelimiter? = nil, chunkSize: Int = CSVReader.defaultChunkSize,
        maxRecordBytes: Int = CSVReader.defaultMaxRecordBytes
    ) throws -> (records: [ParsedRecord], delimiter: UInt8) {
        let dir = try TemporaryDirectory()
        let path = dir.path + "/in.csv"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let fd = open(path, O_RDONLY)
        try #require(fd >= 0)
        defer { close(fd) }
        let reader = CSVReader(
            fileDescriptor: fd, delimiter: delimiter, chunkSize: chunkSize, maxRecordBytes: maxRecordBytes)
        var records: [ParsedRecord] = []
        while try reader.next() {
            let fields = (0..<reader.fieldCount).map { String(decoding: reader.field($0), as: UTF8.self) }
            records.append(
                ParsedRecord(
                    line: reader.line, fields: fields, malformation: reader.malformation,
                    raw: String(decoding: reader.raw, as: UTF8.self)))
        }
        return (records, reader.delimiter)
    }

    /// Parses with several chunk sizes and checks they all agree. The reader first fills its
    /// whole buffer (chunk plus maximum record size, up to 64 KiB), so the chunked reads use a
    /// small maximum record size: otherwise no chunk edge would fall inside a test's text.
    static func parseAllChunkings(_ text: String, delimiter: CSVDelimiter? = nil) throws -> [ParsedRecord] {
        let bytes = Array(text.utf8)
        let reference = try parse(bytes, delimiter: delimiter).records
        for chunk in [16, 17, 23, 64] {
            let other = try parse(bytes, delimiter: delimiter, chunkSize: chunk, maxRecordBytes: 64).records
            #expect(other == reference, "chunk size \(chunk)")
        }
        return reference
    }
}
