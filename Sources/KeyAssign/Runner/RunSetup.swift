import Foundation
import Logging

/// The run command's setup, shared by `run`, `sync` and `demo`: where the API key comes
/// from, the key ring, the logger, and ending with the right status.
public enum RunSetup {
    public static let apiKeyVariable = "KEYASSIGN_API_KEY"

    /// The API key from `--api-key-file`, else `$KEYASSIGN_API_KEY`. Never from a flag value:
    /// argv is visible to every user of the machine.
    public static func apiKey(file: String?, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> String {
        if let file {
            guard let data = FileManager.default.contents(atPath: file) else {
                throw KeyAssignError(.config, "--api-key-file \(file): cannot read the file")
            }
            let key = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            if key.isEmpty { throw KeyAssignError(.config, "--api-key-file \(file): the file is empty") }
            if key.contains(where: { $0.isNewline }) {
                throw KeyAssignError(.config, "--api-key-file \(file): expected one line holding the API key")
            }
            try checkCharacters(key, source: "--api-key-file \(file)")
            return key
        }
        if let key = environment[apiKeyVariable]?.trimmingCharacters(in: .whitespacesAndNewlines), !key.isEmpty {
            try checkCharacters(key, source: "$\(apiKeyVariable)")
            return key
        }
        throw KeyAssignError(.config, "no API key: set $\(apiKeyVariable) or pass --api-key-file PATH")
    }

    /// The key goes into an `Authorization:` header: a CR or LF would end that header and
    /// start another, and any other control character is no part of a real key. Checked the
    /// same for both sources; the message never shows the key.
    static func checkCharacters(_ key: String, source: String) throws {
        if let bad = key.unicodeScalars.first(where: { $0.properties.generalCategory == .control }) {
            let hex = String(bad.value, radix: 16, uppercase: true)
            throw KeyAssignError(.config, "\(source): the API key holds a control character (U+\(String(repeating: "0", count: max(0, 4 - hex.count)) + hex)); "
                                 + "CR, LF and other control characters are not allowed")
        }
    }

    /// `--ca-file`: a readable file holding at least one PEM certificate, checked before
    /// anything is sent, so that a typo fails the run at once (exit 78) instead of every row
    /// failing its TLS handshake.
    public static func checkCAFile(_ path: String?) throws {
        guard let path else { return }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw KeyAssignError(.config, "--ca-file \(path): cannot read the file")
        }
        if !String(decoding: data, as: UTF8.self).contains("-----BEGIN CERTIFICATE-----") {
            throw KeyAssignError(.config, "--ca-file \(path): no PEM certificate in the file (expected -----BEGIN CERTIFICATE-----)")
        }
    }

    /// A logger writing to stderr, without touching the process-wide logging bootstrap (so a
    /// program embedding the runner keeps its own).
    public static func logger(quiet: Bool) -> Logger {
        // Through `LiveLine`: a warning logged while the progress line shows gets a line of its own.
        var logger = Logger(label: "keyassign") { LiveLineLogHandler.standardError(label: $0) }
        logger.logLevel = quiet ? .warning : .info
        return logger
    }

    /// Runs and reports; returns the status to exit with. Errors are printed, not thrown.
    public static func execute(_ options: RunOptions, publicKeys: [String], logger: Logger) -> ExitStatus {
        executeWithSummary(options, publicKeys: publicKeys, logger: logger).status
    }

    /// `execute`, also returning the run's summary when the run got far enough to make one
    /// (not for a lock held by another run, a database failure or an unusable key): what
    /// `--metrics-file` is written from.
    public static func executeWithSummary(_ options: RunOptions, publicKeys: [String],
                                          logger: Logger) -> (status: ExitStatus, summary: RunSummary?) {
        do {
            let ring = try KeyRing(specs: publicKeys)
            let runner = Runner(options: options, verifier: ReplyVerifier(keyRing: ring), logger: logger)
            let summary = try runner.run()
            let status = ExitStatus(rawValue: summary.exitStatus) ?? .someFailed
            if options.progress != .quiet || status != .ok {
                if status == .ok {
                    logger.notice("\(summary.text)")
                } else if status == .someFailed {
                    logger.warning("\(summary.text)")
                } else {
                    logger.error("\(summary.text)")
                }
            }
            return (status, summary)
        } catch {
            logger.error("\(error)")
            return (ExitStatus(for: error), nil)
        }
    }
}
