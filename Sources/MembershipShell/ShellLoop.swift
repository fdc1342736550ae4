import Membership
import NIOCore
import NIOPosix

/// Everything mutable of one shell. Lives on the shell's event loop (`NIOLoopBoundBox`) and is
/// touched only there.
final class ShellState {
    /// Set by `begin`, cleared by `close`: handlers reach the shell through it, and a nil shell
    /// means the shell is not (or no longer) running.
    var shell: MembershipShell?
    var instance: MembershipInstance?
    var datagramChannel: (any Channel)?
    var serverChannel: (any Channel)?
    var timer: Scheduled<Void>?
    var counters = MembershipShellCounters()
    /// Seals everything sent and opens everything received; nil: plaintext (not recommended).
    /// Replaced whole by `setKeyring` during a rotation.
    var keyring: GossipKeyring?
    let continuation: AsyncStream<MembershipEvent>.Continuation
    var inboundStreams: [ObjectIdentifier: any Channel] = [:]
    /// Open inbound streams by remote IP address (`inboundStreamsPerAddressMax`).
    var inboundStreamsByAddress: [String: Int] = [:]
    /// With a keyring: inbound streams whose request frame has not arrived, by when they were
    /// admitted (a count of admissions). When `inboundStreamsMax` are open the oldest of these
    /// makes room for a newcomer: a member sends its request as soon as it connects, and a
    /// request no key opens closes its stream, so a flood from many addresses holds the port only
    /// until a member connects. (Without a keyring anyone can send a request: nothing to prefer.)
    var streamsAwaitingRequest: [ObjectIdentifier: (channel: any Channel, admitted: UInt64)] = [:]
    var streamAdmissions: UInt64 = 0
    var outboundStreams: [ObjectIdentifier: any Channel] = [:]
    /// Outbound exchanges counted from the connect attempt on (before a channel exists).
    var outboundStreamsInFlight = 0
    /// While the core handles an inbound push-pull request: the connection it came on, so that
    /// the core's response (addressed to the request's source) goes back on it.
    var pendingReply: (address: MemberAddress, channel: any Channel, replied: Bool)?

    init(continuation: AsyncStream<MembershipEvent>.Continuation, keyring: GossipKeyring?) {
        self.continuation = continuation
        self.keyring = keyring
    }

    /// The bytes to decode, or nil (counted) when a keyring is set and no key of it opens them.
    /// Without a keyring, the bytes as they came.
    func open(_ bytes: [UInt8], channel: GossipKeyring.Channel) -> [UInt8]? {
        guard let keyring else { return bytes }
        if let plaintext = keyring.open(bytes, channel: channel) { return plaintext }
        switch channel {
        case .datagram: counters.datagramsDroppedUnauthenticated += 1
        case .stream: counters.streamFramesDroppedUnauthenticated += 1
        }
        return nil
    }

    func seal(_ bytes: [UInt8], channel: GossipKeyring.Channel) -> [UInt8] {
        keyring?.seal(bytes, channel: channel) ?? bytes
    }
}

extension MembershipShell {
    // MARK: Lifecycle (on the loop)

    func begin(member: Member, seed: UInt64, datagram: any Channel,
               server: any Channel) -> Result<Void, MembershipShellError> {
        let state = state.value
        do {
            state.instance = try MembershipInstance(localMember: member, configuration: configuration.membership,
                                                    random: MembershipRandom(seed: seed), now: now())
        } catch {
            return .failure(.invalidLocalMember(error))
        }
        state.shell = self
        state.datagramChannel = datagram
        state.serverChannel = server
        schedule(at: state.instance!.nextDeadline)
        return .success(())
    }

    func close() -> EventLoopFuture<Void> {
        let state = state.value
        guard state.shell != nil else { return eventLoop.makeSucceededVoidFuture() }
        state.shell = nil
        state.timer?.cancel()
        state.timer = nil
        var closing: [EventLoopFuture<Void>] = []
        for channel in [state.datagramChannel, state.serverChannel].compactMap({ $0 }) {
            closing.append(channel.close())
        }
        for channel in Array(state.inboundStreams.values) + Array(state.outboundStreams.values) {
            closing.append(channel.close())
        }
        state.datagramChannel = nil
        state.serverChannel = nil
        state.continuation.finish()
        // Closing an already closed channel fails its future; the shell is closed either way.
        return EventLoopFuture.whenAllComplete(closing, on: eventLoop).map { _ in }
    }

    var isRunning: Bool { state.value.shell != nil }

    // MARK: Clock and timer

    /// The core's clock: CLOCK_MONOTONIC in whole milliseconds (the same clock NIO schedules on).
    func now() -> MonotonicInstant {
        MonotonicInstant(milliseconds: Int64(NIODeadline.now().uptimeNanoseconds / 1_000_000))
    }

    /// Replaces the one timer. Deadlines more than an hour away (the core says "never" with a
    /// far instant while leaving) are clamped: an early tick is harmless.
    func schedule(at instant: MonotonicInstant) {
        let state = state.value
        state.timer?.cancel()
        let nowMilliseconds = now().milliseconds
        let milliseconds = min(max(instant.milliseconds, nowMilliseconds), nowMilliseconds + 3_600_000)
        state.timer = eventLoop.scheduleTask(deadline: .uptimeNanoseconds(UInt64(milliseconds) * 1_000_000)) {
            self.timerFired()
        }
    }

    func timerFired() {
        let state = state.value
        guard isRunning, state.instance != nil else { return }
        state.timer = nil
        state.counters.ticks += 1
        let now = now()
        perform(state.instance!.onTick(now: now))
        if state.timer == nil {
            // The core's deadline did not move, so it asked for no timer; keep one anyway.
            schedule(at: max(state.instance!.nextDeadline, now + 1))
        }
    }

    // MARK: Inputs from the sockets (on the loop)

    func receiveDatagram(_ bytes: [UInt8], from address: MemberAddress) {
        let state = state.value
        guard isRunning, state.instance != nil else { return }
        state.counters.datagramsReceived += 1
        guard let bytes = state.open(bytes, channel: .datagram) else { return }
        let message: MembershipMessage
        do {
            message = try MembershipCodec.decode(bytes, metadataBytesMax: configuration.membership.metadataBytesMax,
                                                 membersMax: configuration.membership.membersMax)
        } catch {
            state.counters.datagramsDroppedUndecodable += 1
            return
        }
        guard !message.isStream else {
            state.counters.datagramsDroppedStreamMessage += 1
            return
        }
        perform(state.instance!.onMessage(message, from: address, now: now()))
    }

    /// An inbound connection delivered its request frame. Answered within this turn or closed.
    func receiveStreamRequest(_ payload: [UInt8], from address: MemberAddress, channel: any Channel) {
        let state = state.value
        guard isRunning, state.instance != nil else {
            channel.close(promise: nil)
            return
        }
        guard let message = decodeStream(payload, expectingResponse: false) else {
            channel.close(promise: nil)
            return
        }
        state.counters.streamMessagesReceived += 1
        state.pendingReply = (address, channel, false)
        perform(state.instance!.onMessage(message, from: address, now: now()))
        if let pending = state.pendingReply, !pending.replied { channel.close(promise: nil) }
        state.pendingReply = nil
    }

    /// An outbound exchange received its response frame from `address` (the member we dialled).
    func receiveStreamResponse(_ payload: [UInt8], from address: MemberAddress) {
        let state = state.value
        guard isRunning, state.instance != nil else { return }
        guard let message = decodeStream(payload, expectingResponse: true) else { return }
        state.counters.streamMessagesReceived += 1
        perform(state.instance!.onMessage(message, from: address, now: now()))
    }

    /// Only push-pulls travel on streams: requests and joins inbound, responses outbound.
    func decodeStream(_ sealed: [UInt8], expectingResponse: Bool) -> MembershipMessage? {
        guard let payload = state.value.open(sealed, channel: .stream) else { return nil }
        guard let message = try? MembershipCodec.decode(payload, metadataBytesMax: configuration.membership.metadataBytesMax,
                                                        membersMax: configuration.membership.membersMax),
              case .pushPull(let pushPull) = message.body,
              (pushPull.kind == .response) == expectingResponse else {
            state.value.counters.streamFramesDroppedUndecodable += 1
            return nil
        }
        return message
    }

    // MARK: Directives (on the loop)

    func perform(_ directives: [TickDirective]) {
        for directive in directives {
            switch directive {
            case .send(let message, let address): send(message, to: address)
            case .memberChanged(let change): publish(.changed(change))
            case .memberForgotten(let id): publish(.forgotten(id))
            case .scheduleTick(let instant): schedule(at: instant)
            }
        }
        flushDatagrams()
    }

    func perform(_ directives: [MessageDirective]) {
        for directive in directives {
            switch directive {
            case .send(let message, let address): send(message, to: address)
            case .memberChanged(let change): publish(.changed(change))
            case .scheduleTick(let instant): schedule(at: instant)
            }
        }
        flushDatagrams()
    }

    func perform(_ directives: [JoinDirective]) {
        for directive in directives {
            switch directive {
            case .send(let message, let address): send(message, to: address)
            case .scheduleTick(let instant): schedule(at: instant)
            }
        }
        flushDatagrams()
    }

    func perform(_ directives: [LeaveDirective]) {
        for directive in directives {
            switch directive {
            case .send(let message, let address): send(message, to: address)
            case .scheduleTick(let instant): schedule(at: instant)
            }
        }
        flushDatagrams()
    }

    func publish(_ event: MembershipEvent) {
        let state = state.value
        switch state.continuation.yield(event) {
        case .enqueued, .terminated: break
        case .dropped: state.counters.memberEventsDropped += 1
        @unknown default: break
        }
    }

    func send(_ message: MembershipMessage, to address: MemberAddress) {
        if message.isStream {
            sendStream(message, to: address)
        } else {
            sendDatagram(message, to: address)
        }
    }

    func sendDatagram(_ message: MembershipMessage, to address: MemberAddress) {
        let state = state.value
        guard let channel = state.datagramChannel else { return }
        guard let socketAddress = try? SocketAddress(ipAddress: address.host, port: Int(address.port)) else {
            state.counters.sendsDroppedBadAddress += 1
            return
        }
        guard channel.isWritable else {
            state.counters.datagramsDroppedUnwritable += 1
            return
        }
        let bytes = state.seal(MembershipCodec.encode(message), channel: .datagram)
        var buffer = channel.allocator.buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        channel.write(AddressedEnvelope(remoteAddress: socketAddress, data: buffer), promise: nil)
        state.counters.datagramsSent += 1
    }

    func flushDatagrams() {
        state.value.datagramChannel?.flush()
    }

    // MARK: Streams (on the loop)

    func sendStream(_ message: MembershipMessage, to address: MemberAddress) {
        let state = state.value
        guard isRunning else { return }
        if case .pushPull(let pushPull) = message.body, pushPull.kind == .response {
            guard let pending = state.pendingReply, pending.address == address, !pending.replied else {
                state.counters.streamResponsesDroppedNoConnection += 1
                return
            }
            state.pendingReply?.replied = true
            let frame = StreamFrame.encode(state.seal(MembershipCodec.encode(message), channel: .stream), allocator: pending.channel.allocator)
            let channel = pending.channel
            channel.writeAndFlush(frame).whenComplete { _ in channel.close(promise: nil) }
            return
        }
        guard state.outboundStreamsInFlight < configuration.outboundStreamsMax else {
            state.counters.streamsDroppedOverLimit += 1
            return
        }
        guard let socketAddress = try? SocketAddress(ipAddress: address.host, port: Int(address.port)) else {
            state.counters.sendsDroppedBadAddress += 1
            return
        }
        state.outboundStreamsInFlight += 1
        state.counters.streamsOpened += 1
        let request = state.seal(MembershipCodec.encode(message), channel: .stream)
        let configuration = configuration
        let deadline = NIODeadline.now() + configuration.streamTimeout
        ClientBootstrap(group: eventLoop)
            .connectTimeout(configuration.streamTimeout)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { [state = self.state] channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(OutboundStreamHandler(
                        state: state, address: address, request: request,
                        frameBytesMax: configuration.streamFrameBytesMax, deadline: deadline))
                }
            }
            .connect(to: socketAddress)
            .whenComplete { result in
                self.outboundConnectFinished(result)
            }
    }

    func outboundConnectFinished(_ result: Result<any Channel, any Error>) {
        let state = state.value
        switch result {
        case .failure:
            state.outboundStreamsInFlight -= 1
            state.counters.streamConnectFailures += 1
        case .success(let channel):
            guard isRunning else {
                state.outboundStreamsInFlight -= 1
                channel.close(promise: nil)
                return
            }
            let key = ObjectIdentifier(channel)
            state.outboundStreams[key] = channel
            channel.closeFuture.whenComplete { _ in
                let state = self.state.value
                state.outboundStreams.removeValue(forKey: key)
                state.outboundStreamsInFlight -= 1
            }
        }
    }
}
