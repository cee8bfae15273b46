import NIOCore
import NIOHTTP1

/// One per connection: gathers a request, asks the service what to do, and does it on the
/// connection's event loop (delays are scheduled, never slept).
final class SandboxHTTPHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    /// Assign requests are a few hundred bytes; anything near this is junk.
    static let maxBodyBytes = 1 << 20

    private let service: SandboxService
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    private var bodyTooLarge = false

    init(service: SandboxService) {
        self.service = service
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let requestHead):
            head = requestHead
            body.removeAll(keepingCapacity: true)
            bodyTooLarge = false
        case .body(let chunk):
            if body.count + chunk.readableBytes > Self.maxBodyBytes {
                bodyTooLarge = true
            } else {
                body.append(contentsOf: chunk.readableBytesView)
            }
        case .end:
            guard let requestHead = head else { return }
            head = nil
            respond(to: requestHead, context: context)
        }
    }

    private func respond(to requestHead: HTTPRequestHead, context: ChannelHandlerContext) {
        let keepAlive = requestHead.isKeepAlive
        if bodyTooLarge {
            write(.plain(413, "Payload Too Large"), version: requestHead.version, keepAlive: false, context: context)
            return
        }
        let target = requestHead.uri
        let path = target.firstIndex(of: "?").map { String(target[..<$0]) } ?? target
        let request = SandboxRequest(
            method: requestHead.method.rawValue,
            path: path,
            contentType: requestHead.headers.first(name: "content-type"),
            authorization: requestHead.headers.first(name: "authorization"),
            idempotencyKey: requestHead.headers.first(name: "idempotency-key"),
            body: body,
            headers: requestHead.headers.map { ($0.name, $0.value) }
        )
        switch service.handle(request) {
        case .reply(let reply) where reply.delayMilliseconds > 0:
            context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(Int64(reply.delayMilliseconds))) {
                self.write(reply, version: requestHead.version, keepAlive: keepAlive, context: context)
            }
        case .reply(let reply):
            write(reply, version: requestHead.version, keepAlive: keepAlive, context: context)
        case .drop(let delay) where delay > 0:
            context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(Int64(delay))) {
                context.close(promise: nil)
            }
        case .drop:
            context.close(promise: nil)
        }
    }

    private func write(_ reply: SandboxReply, version: HTTPVersion, keepAlive: Bool, context: ChannelHandlerContext) {
        var headers = HTTPHeaders()
        for (name, value) in reply.headers { headers.add(name: name, value: value) }
        headers.add(name: "Content-Length", value: String(reply.body.count))
        if !keepAlive {
            headers.add(name: "Connection", value: "close")
        } else if version.major == 1 && version.minor == 0 {
            headers.add(name: "Connection", value: "keep-alive")
        }
        let responseHead = HTTPResponseHead(
            version: version, status: HTTPResponseStatus(statusCode: reply.status),
            headers: headers)
        context.write(wrapOutboundOut(.head(responseHead)), promise: nil)
        var buffer = context.channel.allocator.buffer(capacity: reply.body.count)
        buffer.writeBytes(reply.body)
        context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        if keepAlive {
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        } else {
            let written = context.eventLoop.makePromise(of: Void.self)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: written)
            written.futureResult.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}
