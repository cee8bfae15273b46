import Foundation
import KeyAssign

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// One assignment as the sandbox persists it, one JSON object per line of `assignments.jsonl`.
struct AssignmentRecord: Codable, Sendable, Equatable {
    var licenseKey: String
    var ownerName: String?
    var email: String?
    var assignedAt: String

    enum CodingKeys: String, CodingKey {
        case licenseKey = "license_key"
        case ownerName = "owner_name"
        case email
        case assignedAt = "assigned_at"
    }
}

/// Append-only file of assignments. Each record goes out in one write(2) before the reply is
/// sent, so a killed sandbox never forgets a key it said "800" for (nor one whose reply it
/// dropped on purpose). Not thread-safe: the server calls it under its state lock.
final class AssignmentLog {
    private let path: String
    private var fd: Int32

    init(path: String) throws {
        self.path = path
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0o600)
        guard fd >= 0 else {
            throw KeyAssignError(
                .ioError, "\(path): cannot open it for appending (\(String(cString: strerror(errno))))")
        }
    }

    deinit { closeFile() }

    func closeFile() {
        if fd >= 0 {
            close(fd)
            fd = -1
        }
    }

    /// Records already in the file. A torn last line (the process died mid-write) is skipped:
    /// its reply was never sent.
    static func load(path: String) throws -> [AssignmentRecord] {
        guard FileManager.default.fileExists(atPath: path) else { return [] }
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw KeyAssignError(.ioError, "\(path): cannot read it (\(error.localizedDescription))")
        }
        let decoder = JSONDecoder()
        var records: [AssignmentRecord] = []
        for line in data.split(separator: UInt8(ascii: "\n")) where !line.isEmpty {
            if let record = try? decoder.decode(AssignmentRecord.self, from: Data(line)) {
                records.append(record)
            }
        }
        return records
    }

    func append(_ record: AssignmentRecord) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var line = Array(try encoder.encode(record))
        line.append(UInt8(ascii: "\n"))
        let written = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == line.count else {
            throw KeyAssignError(.ioError, "\(path): cannot append an assignment (\(String(cString: strerror(errno))))")
        }
    }
}
