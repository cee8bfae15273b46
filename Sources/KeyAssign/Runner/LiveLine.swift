import Foundation
import Logging
import Synchronization

/// The one live line on a terminal's stderr (the progress line), and everything else written
/// there while it shows: a log line first clears it, so that it starts at the left margin on
/// a line of its own (never glued to the progress line, nor to a `^C` the terminal echoed
/// after it), then the live line is drawn again below it. One lock orders every write.
final class LiveLine: Sendable {
    static let standardError = LiveLine()

    private struct State {
        /// What the live line shows now; nil when none shows.
        var shown: String?
    }

    private let state = Mutex(State())

    /// Erases the current line and draws `text` in its place.
    func draw(_ text: String) {
        state.withLock { state in
            Self.write("\r\u{1B}[K" + text)
            state.shown = text
        }
    }

    /// Draws `text` one last time and ends the line: what follows starts below it.
    func finish(_ text: String) {
        state.withLock { state in
            Self.write("\r\u{1B}[K" + text + "\n")
            state.shown = nil
        }
    }

    /// Runs `write` (which writes whole lines to stderr) with the live line cleared first and
    /// drawn again after.
    func interrupting(_ write: () -> Void) {
        state.withLock { state in
            guard let shown = state.shown else { return write() }
            Self.write("\r\u{1B}[K")
            write()
            Self.write(shown)
        }
    }

    private static func write(_ text: String) {
        FileHandle.standardError.write(Data(text.utf8))
    }
}

/// The stderr log handler (`TerminalSafeLogHandler`: every message escaped), writing through
/// `LiveLine` so that a warning logged while the progress line shows gets a line of its own.
struct LiveLineLogHandler: LogHandler {
    private var inner: TerminalSafeLogHandler

    static func standardError(label: String) -> LiveLineLogHandler {
        LiveLineLogHandler(inner: TerminalSafeLogHandler(label: label))
    }

    var metadataProvider: Logger.MetadataProvider? {
        get { inner.metadataProvider }
        set { inner.metadataProvider = newValue }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { inner[metadataKey: key] }
        set { inner[metadataKey: key] = newValue }
    }

    var metadata: Logger.Metadata {
        get { inner.metadata }
        set { inner.metadata = newValue }
    }

    var logLevel: Logger.Level {
        get { inner.logLevel }
        set { inner.logLevel = newValue }
    }

    func log(event: LogEvent) {
        LiveLine.standardError.interrupting { inner.log(event: event) }
    }
}
