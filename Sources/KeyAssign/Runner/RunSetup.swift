import Foundation
import Logging

/// The run command's setup, shared by `run`, `sync` and `demo`: where the API key comes
/// from, the key ring, the logger, and ending with the right status.
public enum RunSetup {
    public static let apiKeyVariable = "KEYASSIGN_API_KEY"

    /// The API key from `--api-key-file`, else `$KEYASSIGN_API_KEY`. Never from a flag value:
    /// argv is visible to every user of the machine.
    ///
    /// From here on the process holds the key: core dumps are turned off first (`CoreDumpGuard`).
    /// The file must be a regular file: a FIFO is refused (exit 78), never waited on.
    public static func apiKey(file: String?, environment: [String: String] = ProcessInfo.processInfo.environment) throws
        -> String
    {
        try CoreDumpGuard.engage()
        if let file {
            let data: [UInt8]
            switch SmallFile.contents(of: file, limit: 64 << 10) {
            case .success(let bytes): data = bytes
            case .failure(let failure): throw KeyAssignError(.config, "--api-key-file \(file): \(failure.description)")
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
            throw KeyAssignError(
                .config,
                "\(source): the API key holds a control character (U+\(String(repeating: "0", count: max(0, 4 - hex.count)) + hex)); "
                    + "CR, LF and other control characters are not allowed")
        }
    }

    /// Output files named by flags (`--summary-json`, `--metrics-file`): absent, or a regular
    /// file. Checked before the command takes the database lock (`RegularFile`).
    public static func checkOutputPaths(_ paths: [String: String?]) throws {
        for (flag, path) in paths.sorted(by: { $0.key < $1.key }) {
            if let path { try RegularFile.checkOutputPath(path, flag: flag) }
        }
    }

    /// `--ca-file`: a readable file holding at least one PEM certificate, checked before
    /// anything is sent, so that a typo fails the run at once (exit 78) instead of every row
    /// failing its TLS handshake.
    public static func checkCAFile(_ path: String?) throws {
        guard let path else { return }
        let data: [UInt8]
        // A regular file (a FIFO is refused, not waited on); a CA bundle is far below 16 MiB.
        switch SmallFile.contents(of: path, limit: 16 << 20) {
        case .success(let bytes): data = bytes
        case .failure(let failure): throw KeyAssignError(.config, "--ca-file \(path): \(failure.description)")
        }
        if !String(decoding: data, as: UTF8.self).contains("-----BEGIN CERTIFICATE-----") {
            throw KeyAssignError(
                .config, "--ca-file \(path): no PEM certificate in the file (expected -----BEGIN CERTIFICATE-----)")
        }
    }

    /// A logger writing to stderr, without touching the process-wide logging bootstrap (so a
    /// program embedding the runner keeps its own).
    public static func logger(quiet: Bool) -> Logger {
        // Every line escaped on its way out (`TerminalSafeLogHandler`: messages quote servers and
        // files), and through `LiveLine`: a warning logged while the progress line shows gets a
        // line of its own.
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
    public static func executeWithSummary(
        _ options: RunOptions, publicKeys: [String],
        logger: Logger
    ) -> (status: ExitStatus, summary: RunSummary?) {
        do {
            let ring = try KeyRing(specs: publicKeys)
            let runner = Runner(options: options, verifier: ReplyVerifier(keyRing: ring), logger: logger)
            let summary = try runner.run()
            let status = ExitStatus(rawValue: summary.exitStatus) ?? .someFailed
            if options.progress != .quiet || status != .ok {
                // A spent quota is a schedule, not a failure: its own warning line says what is left.
                if status == .ok || status == .quotaSpent {
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
