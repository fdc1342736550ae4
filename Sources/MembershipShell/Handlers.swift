import Membership
import NIOCore

/// Hands every datagram to the shell. Socket errors (ICMP unreachable and the like) are counted
/// and the socket stays open: one unreachable peer must not silence the member.
final class DatagramHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>

    let state: NIOLoopBoundBox<ShellState>

    init(state: NIOLoopBoundBox<ShellState>) { self.state = state }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        guard let shell = state.value.shell else { return }
        guard let host = envelope.remoteAddress.ipAddress, let port = envelope.remoteAddress.port,
              let port16 = UInt16(exactly: port), !host.isEmpty else {
            state.value.counters.datagramsReceived += 1
            state.value.counters.datagramsDroppedUndecodable += 1
            return
        }
        shell.receiveDatagram(Array(envelope.data.readableBytesView), from: MemberAddress(host: host, port: port16))
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        state.value.counters.datagramSocketErrors += 1
    }
}

/// Serves one inbound push-pull connection: reads one request frame, lets the shell answer it on
/// this connection, and is closed by the shell after the answer (or at once if there is none).
/// Over the limit of inbound connections, or past the exchange deadline, it closes.
final class InboundStreamHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    let state: NIOLoopBoundBox<ShellState>
    let configuration: MembershipShellConfiguration
    var decoder: StreamFrame.Decoder
    var isDone = false
    var timeout: Scheduled<Void>?
    /// The remote IP this stream counts against, once admitted.
    var countedAddress: String?

    init(state: NIOLoopBoundBox<ShellState>, configuration: MembershipShellConfiguration) {
        self.state = state
        self.configuration = configuration
        decoder = StreamFrame.Decoder(frameBytesMax: configuration.streamFrameBytesMax)
    }

    func channelActive(context: ChannelHandlerContext) {
        let state = state.value
        let address = context.remoteAddress?.ipAddress ?? "?"
        if state.shell != nil, state.keyring != nil, state.inboundStreams.count >= configuration.inboundStreamsMax,
           state.inboundStreamsByAddress[address, default: 0] < configuration.inboundStreamsPerAddressMax,
           let oldest = state.streamsAwaitingRequest.min(by: { $0.value.admitted < $1.value.admitted }) {
            // Full, and some streams have not sent a request: the oldest goes. Its slot is freed
            // now (its channelInactive finds nothing to remove there); its address's count falls then.
            state.streamsAwaitingRequest.removeValue(forKey: oldest.key)
            state.inboundStreams.removeValue(forKey: oldest.key)
            state.counters.streamsEvictedAwaitingRequest += 1
            oldest.value.channel.close(promise: nil)
        }
        guard state.shell != nil, state.inboundStreams.count < configuration.inboundStreamsMax else {
            state.counters.streamsRefusedOverLimit += 1
            isDone = true
            context.close(promise: nil)
            return
        }
        guard state.inboundStreamsByAddress[address, default: 0] < configuration.inboundStreamsPerAddressMax else {
            state.counters.streamsRefusedPerAddress += 1
            isDone = true
            context.close(promise: nil)
            return
        }
        state.inboundStreamsByAddress[address, default: 0] += 1
        countedAddress = address
        state.counters.streamsAccepted += 1
        let channel = context.channel
        state.inboundStreams[ObjectIdentifier(channel)] = channel
        state.streamAdmissions += 1
        state.streamsAwaitingRequest[ObjectIdentifier(channel)] = (channel, state.streamAdmissions)
        timeout = channel.eventLoop.scheduleTask(in: configuration.streamTimeout) { [box = self.state] in
            box.value.counters.streamsTimedOut += 1
            channel.close(promise: nil)
        }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        timeout?.cancel()
        let state = state.value
        state.inboundStreams.removeValue(forKey: ObjectIdentifier(context.channel))
        state.streamsAwaitingRequest.removeValue(forKey: ObjectIdentifier(context.channel))
        if let address = countedAddress {
            countedAddress = nil
            let remaining = state.inboundStreamsByAddress[address, default: 1] - 1
            state.inboundStreamsByAddress[address] = remaining > 0 ? remaining : nil
        }
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !isDone else { return }
        var bytes = unwrapInboundIn(data)
        let payload: [UInt8]?
        do {
            payload = try decoder.feed(&bytes)
        } catch {
            isDone = true
            state.value.counters.streamFramesDroppedUndecodable += 1
            context.close(promise: nil)
            return
        }
        guard let payload else { return }
        // One request per connection; anything after it is ignored until the answer closes us.
        isDone = true
        state.value.streamsAwaitingRequest.removeValue(forKey: ObjectIdentifier(context.channel))
        guard let shell = state.value.shell, let remote = context.remoteAddress, let host = remote.ipAddress,
              let port = remote.port.flatMap(UInt16.init(exactly:)) else {
            context.close(promise: nil)
            return
        }
        shell.receiveStreamRequest(payload, from: MemberAddress(host: host, port: port), channel: context.channel)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

/// One outbound push-pull exchange: writes the request frame when connected, reads one response
/// frame, hands it to the shell and closes. The deadline covers the whole exchange.
final class OutboundStreamHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    let state: NIOLoopBoundBox<ShellState>
    let address: MemberAddress
    let request: [UInt8]
    let deadline: NIODeadline
    var decoder: StreamFrame.Decoder
    var isDone = false
    var timeout: Scheduled<Void>?

    init(state: NIOLoopBoundBox<ShellState>, address: MemberAddress, request: [UInt8], frameBytesMax: Int,
         deadline: NIODeadline) {
        self.state = state
        self.address = address
        self.request = request
        self.deadline = deadline
        decoder = StreamFrame.Decoder(frameBytesMax: frameBytesMax)
    }

    func channelActive(context: ChannelHandlerContext) {
        let channel = context.channel
        timeout = channel.eventLoop.scheduleTask(deadline: deadline) { [box = self.state] in
            box.value.counters.streamsTimedOut += 1
            channel.close(promise: nil)
        }
        context.writeAndFlush(wrapOutboundOut(StreamFrame.encode(request, allocator: context.channel.allocator)),
                              promise: nil)
        context.fireChannelActive()
    }

    typealias OutboundOut = ByteBuffer

    func channelInactive(context: ChannelHandlerContext) {
        timeout?.cancel()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !isDone else { return }
        var bytes = unwrapInboundIn(data)
        let payload: [UInt8]?
        do {
            payload = try decoder.feed(&bytes)
        } catch {
            isDone = true
            state.value.counters.streamFramesDroppedUndecodable += 1
            context.close(promise: nil)
            return
        }
        guard let payload else { return }
        isDone = true
        context.close(promise: nil)
        state.value.shell?.receiveStreamResponse(payload, from: address)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
