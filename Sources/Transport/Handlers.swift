import Logging
import NIOCore
import Raft
import Wire

/// Decodes the frames of one inbound connection. Any `WireError` closes this connection: after
/// one the stream cannot be trusted to be aligned on a frame boundary (see `FrameDecoder`).
final class InboundFrameHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    let box: ListenerBox
    var decoder: FrameDecoder
    var isClosing = false

    init(box: ListenerBox) {
        self.box = box
        self.decoder = FrameDecoder(frameBytesMax: box.configuration.frameBytesMax)
    }

    func channelActive(context: ChannelHandlerContext) {
        let state = box.state.value
        if state.isShutDown || state.inboundChannels.count >= box.configuration.inboundConnectionsMax {
            state.counters.connectionsRefusedOverLimit += 1
            box.logger.warning("inbound connection refused", metadata: [
                "remote": "\(context.remoteAddress.map { "\($0)" } ?? "?")",
                "inboundConnectionsMax": "\(box.configuration.inboundConnectionsMax)",
            ])
            isClosing = true
            context.close(promise: nil)
            return
        }
        state.inboundChannels[ObjectIdentifier(context.channel)] = context.channel
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        box.state.value.inboundChannels.removeValue(forKey: ObjectIdentifier(context.channel))
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !isClosing else { return }
        let buffer = unwrapInboundIn(data)
        do {
            try decoder.feed(buffer.readableBytesView)
            while let message = try decoder.next(Message.self) {
                box.state.value.counters.messagesReceived += 1
                box.receive(message)
            }
        } catch {
            isClosing = true
            box.state.value.counters.connectionsClosedOnWireError += 1
            box.logger.warning("closing inbound connection: undecodable bytes", metadata: [
                "remote": "\(context.remoteAddress.map { "\($0)" } ?? "?")", "error": "\(error)",
            ])
            context.close(promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A reset or similar socket error: the connection is gone; the peer reconnects.
        context.close(promise: nil)
    }
}

/// Watches one outbound connection: drains the queue when the socket becomes writable again and
/// reports the loss so that the transport reconnects. Peers never write on our outbound
/// connections; anything read is discarded.
final class OutboundLinkHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    let transport: Transport
    let peerID: NodeID

    init(transport: Transport, peerID: NodeID) {
        self.transport = transport
        self.peerID = peerID
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { transport.drain(peerID) }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        transport.linkClosed(peerID, channel: context.channel)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
