import Foundation
import KeyAssign

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The sandbox's files under its state directory: the API key, the inventory, the signing key
/// pair's paths and the bound port.
struct SandboxStateDirectory {
    let path: String

    var privateKeyPath: String { path + "/private.pem" }
    var publicKeyPath: String { path + "/public.pem" }
    var apiKeyPath: String { path + "/api-key" }
    var generatedKeysPath: String { path + "/keys.txt" }
    var portPath: String { path + "/port" }
    var assignmentsPath: String { path + "/assignments.jsonl" }

    init(creating path: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw KeyAssignError(.ioError, "state directory \(path): cannot create it (\(error.localizedDescription))")
        }
        self.path = path
    }

    /// The API key from `file`, else the one saved in `DIR/api-key`, else a new UUID saved there.
    func apiKey(from file: String?) throws -> String {
        if let file {
            return try Self.readSecret(file)
        }
        if FileManager.default.fileExists(atPath: apiKeyPath) {
            return try Self.readSecret(apiKeyPath)
        }
        let key = UUID().uuidString.lowercased()
        try Self.writeAtomically(apiKeyPath, key + "\n", mode: 0o600)
        return key
    }

    func inventory(_ source: SandboxConfiguration.Inventory) throws -> [String] {
        switch source {
        case .keys(let keys):
            return keys
        case .file(let file):
            return try Self.readKeys(file)
        case .generate(let count):
            if FileManager.default.fileExists(atPath: generatedKeysPath) {
                return try Self.readKeys(generatedKeysPath)
            }
            let keys = (0..<count).map { _ in UUID().uuidString }
            try Self.writeAtomically(generatedKeysPath, keys.map { $0 + "\n" }.joined(), mode: 0o644)
            return keys
        }
    }

    /// Written only once the socket is bound, by rename, so that a reader never sees a partial
    /// number or a port nobody listens on yet.
    func writePort(_ port: Int) throws {
        try Self.writeAtomically(portPath, "\(port)\n", mode: 0o644)
    }

    static func readKeys(_ file: String) throws -> [String] {
        let text: String
        do {
            text = try String(contentsOfFile: file, encoding: .utf8)
        } catch {
            throw KeyAssignError(
                .dataError, "inventory \(file): cannot read it as UTF-8 text (\(error.localizedDescription))")
        }
        var keys: [String] = []
        for line in text.split(whereSeparator: \.isNewline) {
            let key = line.trimmingWhitespace()
            if key.isEmpty || key.hasPrefix("#") { continue }
            keys.append(key)
        }
        return keys
    }

    static func readSecret(_ file: String) throws -> String {
        let text: String
        do {
            text = try String(contentsOfFile: file, encoding: .utf8)
        } catch {
            throw KeyAssignError(.config, "API key file \(file): cannot read it (\(error.localizedDescription))")
        }
        let key = text.trimmingWhitespace()
        guard !key.isEmpty else { throw KeyAssignError(.config, "API key file \(file): it is empty") }
        guard !key.contains(where: \.isWhitespace) else {
            throw KeyAssignError(.config, "API key file \(file): expected one key on one line")
        }
        return key
    }

    /// Temp file in the same directory, then rename: readers see the old file or the whole new one.
    static func writeAtomically(_ file: String, _ contents: String, mode: mode_t) throws {
        let temporary = file + ".tmp-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, mode)
        guard fd >= 0 else {
            throw KeyAssignError(.ioError, "\(file): cannot create it (\(String(cString: strerror(errno))))")
        }
        // open(2)'s mode is filtered by the umask; secrets must end up 0600 whatever it is.
        fchmod(fd, mode)
        let bytes = Array(contents.utf8)
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        let writeError = errno
        close(fd)
        guard written == bytes.count else {
            unlink(temporary)
            throw KeyAssignError(.ioError, "\(file): cannot write it (\(String(cString: strerror(writeError))))")
        }
        guard rename(temporary, file) == 0 else {
            let renameError = errno
            unlink(temporary)
            throw KeyAssignError(.ioError, "\(file): cannot replace it (\(String(cString: strerror(renameError))))")
        }
    }
}
