import Dispatch
import Foundation

/// `keyassign sandbox` in the foreground: start, announce, serve until SIGINT or SIGTERM,
/// then stop cleanly (an orderly stop is the expected way out, so it returns normally).
public enum SandboxForeground {
    public static func run(_ configuration: SandboxConfiguration) throws {
        // Ignore the default actions first so a signal arriving during start-up is not fatal;
        // the dispatch sources below then see it.
        signal(SIGINT, SIG_IGN)
        signal(SIGTERM, SIG_IGN)
        let server = try SandboxServer.start(configuration)
        let queue = DispatchQueue(label: "keyassign.sandbox.signals")
        let stopRequested = DispatchSemaphore(value: 0)
        let sources = [SIGINT, SIGTERM].map { number in
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler { stopRequested.signal() }
            source.resume()
            return source
        }
        FileHandle.standardError.write(
            Data(
                """
                sandbox: listening on \(server.baseURL) (state \(server.stateDirectory), public key \
                \(server.publicKeyPath), fault seed \(server.seed))\n
                """.utf8))
        // Unbuffered, so a parent reading our stdout through a pipe sees the URL at once.
        FileHandle.standardOutput.write(Data((server.baseURL + "\n").utf8))
        stopRequested.wait()
        // On this thread, so the process cannot exit before the event loops have stopped.
        server.shutdown()
        for source in sources { source.cancel() }
    }
}
