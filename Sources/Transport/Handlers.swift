import ClusterCertificates
import Logging
import NIOCore
import NIOSSL
import NIOTLS
import Raft
import Wire

/// Decodes the frames of one inbound connection. Any `WireError` closes this connection: after
/// one the stream cannot be trusted to be aligned on a frame boundary (see `FrameDecoder`).
final class InboundFrameHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    let box: ListenerBox
    var decoder: FrameDecoder
    var isClosing = false
    /// TLS: who the peer's verified certificate says it is, from the end of the handshake on.
    var identity: PeerIdentity?
    /// The remote IP this connection counts against (`inboundConnectionsPerAddressMax`), once admitted.
    var countedAddress: String?
    var handshakeDeadline: Scheduled<Void>?

    init(box: ListenerBox) {
        self.box = box
        self.decoder = FrameDecoder(frameBytesMax: box.configuration.frameBytesMax)
    }

    func channelActive(context: ChannelHandlerContext) {
        let state = box.state.value
        let configuration = box.configuration
        let address = context.remoteAddress?.ipAddress ?? "?"
        if !state.isShutDown, configuration.tls != nil, state.inboundChannels.count >= configuration.inboundConnectionsMax,
           state.inboundByAddress[address, default: 0] < configuration.inboundConnectionsPerAddressMax,
           let oldest = state.handshakesPending.min(by: { $0.value.admitted < $1.value.admitted }) {
            // Full, and some of it has not proven a cluster certificate yet: the oldest of those
            // goes. Its slot is freed now (its own channelInactive comes later and finds nothing
            // to remove there); its address's count falls then.
            state.handshakesPending.removeValue(forKey: oldest.key)
            state.inboundChannels.removeValue(forKey: oldest.key)
            state.counters.connectionsEvictedUnauthenticated += 1
            oldest.value.channel.close(promise: nil)
        }
        if state.isShutDown || state.inboundChannels.count >= configuration.inboundConnectionsMax {
            state.counters.connectionsRefusedOverLimit += 1
            box.logger.warning("inbound connection refused", metadata: [
                "remote": "\(context.remoteAddress.map { "\($0)" } ?? "?")",
                "inboundConnectionsMax": "\(configuration.inboundConnectionsMax)",
            ])
            isClosing = true
            context.close(promise: nil)
            return
        }
        if state.inboundByAddress[address, default: 0] >= configuration.inboundConnectionsPerAddressMax {
            // Counted, not logged per connection: a flood would flood the journal too.
            state.counters.connectionsRefusedPerAddress += 1
            isClosing = true
            context.close(promise: nil)
            return
        }
        state.inboundByAddress[address, default: 0] += 1
        countedAddress = address
        state.inboundChannels[ObjectIdentifier(context.channel)] = context.channel
        if configuration.tls != nil {
            let channel = context.channel
            state.admissions += 1
            state.handshakesPending[ObjectIdentifier(channel)] = (channel, state.admissions)
            handshakeDeadline = channel.eventLoop.scheduleTask(in: configuration.handshakeTimeout) { [box] in
                box.state.value.counters.handshakeTimeouts += 1
                channel.close(promise: nil)
            }
        }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        handshakeDeadline?.cancel()
        let state = box.state.value
        state.inboundChannels.removeValue(forKey: ObjectIdentifier(context.channel))
        state.handshakesPending.removeValue(forKey: ObjectIdentifier(context.channel))
        if let address = countedAddress {
            countedAddress = nil
            let remaining = state.inboundByAddress[address, default: 1] - 1
            state.inboundByAddress[address] = remaining > 0 ? remaining : nil
        }
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted = event {
            handshakeDeadline?.cancel()
            handshakeDeadline = nil
            box.state.value.handshakesPending.removeValue(forKey: ObjectIdentifier(context.channel))
            let handler = try? context.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self)
            identity = handler?.peerCertificate.flatMap(PeerIdentity.init)
        }
        if let idle = event as? IdleStateHandler.IdleStateEvent, idle == .read {
            box.state.value.counters.idleConnectionsClosed += 1
            isClosing = true
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !isClosing else { return }
        let buffer = unwrapInboundIn(data)
        do {
            try decoder.feed(buffer.readableBytesView)
            while let message = try decoder.next(Message.self) {
                if let tls = box.configuration.tls {
                    guard let identity, tls.mayAcceptMessage(message.from, identity) else {
                        refuse(message, context: context)
                        return
                    }
                }
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

    /// A message its certificate may not send: forged, or a machine speaking for another.
    func refuse(_ message: Message, context: ChannelHandlerContext) {
        isClosing = true
        box.state.value.counters.messagesDroppedUnauthorized += 1
        box.state.value.counters.connectionsClosedUnauthorized += 1
        box.logger.warning("closing inbound connection: a message from a node its certificate does not name", metadata: [
            "remote": "\(context.remoteAddress.map { "\($0)" } ?? "?")", "from": "\(message.from)",
            "certificate": "\(identity.map { "\($0)" } ?? "no Flotilla identity")",
        ])
        context.close(promise: nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A reset or similar socket error: the connection is gone; the peer reconnects. Before
        // the handshake completed, a TLS failure (no certificate, another CA, an old version).
        if box.configuration.tls != nil, identity == nil { box.state.value.counters.handshakeFailures += 1 }
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
    let address: PeerAddress

    init(transport: Transport, peerID: NodeID, address: PeerAddress) {
        self.transport = transport
        self.peerID = peerID
        self.address = address
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted = event {
            let handler = try? context.pipeline.syncOperations.handler(type: NIOSSLClientHandler.self)
            transport.linkVerified(peerID, channel: context.channel, identity: handler?.peerCertificate.flatMap(PeerIdentity.init))
        }
        context.fireUserInboundEventTriggered(event)
    }

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
