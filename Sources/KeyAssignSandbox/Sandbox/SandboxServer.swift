import Foundation
import KeyAssign
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// A local Key Manager license server speaking the real `assign-license-key` protocol, with
/// signed replies, a ledger of what it saw, a server-side rate limit and injected faults.
/// Runs in-process (tests, `keyassign demo`) or under `keyassign sandbox`.
public final class SandboxServer: Sendable {
    public let port: Int
    public let host: String
    public let apiKey: String
    public let publicKeyPath: String
    public let stateDirectory: String
    /// The fault generator's seed (drawn at random when the configuration gave none).
    public let seed: UInt64
    public var baseURL: String { "http://\(host.contains(":") ? "[\(host)]" : host):\(port)" }

    private let group: MultiThreadedEventLoopGroup
    private let channel: Channel
    private let service: SandboxService
    private let stopped = Mutex(false)

    private init(
        port: Int, host: String, apiKey: String, publicKeyPath: String, stateDirectory: String,
        seed: UInt64, group: MultiThreadedEventLoopGroup, channel: Channel, service: SandboxService
    ) {
        self.port = port
        self.host = host
        self.apiKey = apiKey
        self.publicKeyPath = publicKeyPath
        self.stateDirectory = stateDirectory
        self.seed = seed
        self.group = group
        self.channel = channel
        self.service = service
    }

    /// Prepares the state directory (signing key, API key, inventory, earlier assignments),
    /// binds the socket, then writes `DIR/port`.
    public static func start(_ configuration: SandboxConfiguration) throws -> SandboxServer {
        try configuration.validate()
        let directory = try SandboxStateDirectory(creating: configuration.stateDirectory)
        let signer = try ReplySigner.loadOrCreate(
            privateKeyPath: directory.privateKeyPath,
            publicKeyPath: directory.publicKeyPath,
            bits: configuration.keyBits)
        let apiKey = try directory.apiKey(from: configuration.apiKeyFile)
        let inventory = try directory.inventory(configuration.inventory)
        let seed = configuration.faults.seed ?? UInt64.random(in: 0...UInt64.max)
        let service = try SandboxService(
            apiKey: apiKey, inventory: inventory,
            assignmentsPath: directory.assignmentsPath,
            replies: SignedReplyMaker(
                signer: signer, keyName: configuration.keyName,
                escapesSlashes: configuration.escapesSlashes,
                caching: configuration.cachesSignatures),
            dice: SandboxFaultDice(configuration.faults, seed: seed),
            rateLimit: configuration.rateLimit, quotas: configuration.quotas,
            listingMode: configuration.listing, hostileText: configuration.hostileText)
        do {
            for sold in configuration.preassigned {
                try service.preassign(key: sold.licenseKey, ownerName: sold.ownerName, email: sold.email)
            }
        } catch {
            service.closeLog()
            throw error
        }

        let group = MultiThreadedEventLoopGroup(numberOfThreads: configuration.threads ?? System.coreCount)
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(
                        withPipeliningAssistance: true, withServerUpgrade: nil, withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(SandboxHTTPHandler(service: service))
                }
            }
        let channel: Channel
        do {
            channel = try bootstrap.bind(host: configuration.host, port: configuration.port).wait()
        } catch {
            try? group.syncShutdownGracefully()
            service.closeLog()
            throw KeyAssignError(
                .config, "sandbox: cannot listen on \(configuration.host):\(configuration.port) (\(error))")
        }
        guard let port = channel.localAddress?.port else {
            try? channel.close().wait()
            try? group.syncShutdownGracefully()
            service.closeLog()
            throw KeyAssignError(.ioError, "sandbox: the socket has no local port")
        }
        let server = SandboxServer(
            port: port, host: configuration.host, apiKey: apiKey,
            publicKeyPath: directory.publicKeyPath, stateDirectory: directory.path,
            seed: seed, group: group, channel: channel, service: service)
        do {
            try directory.writePort(port)
        } catch {
            server.shutdown()
            throw error
        }
        return server
    }

    /// A snapshot of what the server saw (also at `GET /__sandbox/ledger`).
    public func ledger() -> SandboxLedger {
        service.ledger()
    }

    /// Marks `key` assigned in advance, persisted like an assignment made by a request.
    public func preassign(key: String, ownerName: String? = nil, email: String? = nil) throws {
        try service.preassign(key: key, ownerName: ownerName, email: email)
    }

    /// Stops listening, closes open connections and waits for the event loops to finish.
    /// Safe to call more than once; call it from outside the server's event loops (it waits).
    public func shutdown() {
        let first = stopped.withLock { stopped in
            defer { stopped = true }
            return !stopped
        }
        guard first else { return }
        try? channel.close().wait()
        try? group.syncShutdownGracefully()
        service.closeLog()
    }

    deinit {
        shutdown()
    }
}
