import Logging

/// The log handler of every command: swift-log's stderr stream, with each message passed
/// through `TerminalText` first. A message may quote a server (a signed message, an error
/// page), a listing (an owner name) or a file name; escaping here, where every line goes
/// out, keeps a newline or an ESC in any of them from forging a log line or driving the
/// terminal, whichever code path logged it. keyassign's own messages are one line each.
public struct TerminalSafeLogHandler: LogHandler {
    private var inner: StreamLogHandler

    public init(label: String) {
        inner = StreamLogHandler.standardError(label: label)
    }

    public var logLevel: Logger.Level {
        get { inner.logLevel }
        set { inner.logLevel = newValue }
    }

    public var metadata: Logger.Metadata {
        get { inner.metadata }
        set { inner.metadata = newValue }
    }

    public var metadataProvider: Logger.MetadataProvider? {
        get { inner.metadataProvider }
        set { inner.metadataProvider = newValue }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { inner[metadataKey: key] }
        set { inner[metadataKey: key] = newValue }
    }

    public func log(event: LogEvent) {
        var event = event
        event.message = "\(TerminalText.escape(event.message.description))"
        inner.log(event: event)
    }
}
