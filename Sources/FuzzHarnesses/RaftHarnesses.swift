import Raft
import Wire

enum RaftHarnesses {
    /// Raw bytes into the transport's frame decoder, fed in pieces whose sizes come from the
    /// input, then the first byte as a kind and the rest as that kind's body, framed properly
    /// (random bytes rarely pass a CRC, so the bodies' decoders would otherwise go unexercised).
    static func frames(_ bytes: [UInt8]) {
        var decoder = FrameDecoder(frameBytesMax: 64 * 1024)
        var offset = 0
        var step = 1
        feeding: while offset < bytes.count {
            let end = min(bytes.count, offset + step)
            do {
                try decoder.feed(bytes[offset..<end])
                while let frame = try decoder.nextFrame() { check(frame) }
            } catch {
                break feeding
            }
            step = Int(bytes[offset] % 64) + 1
            offset = end
        }
        guard let kindByte = bytes.first, let kind = FrameKind(rawValue: kindByte % 8) else { return }
        let framed = Frame(kind: kind, body: Array(bytes.dropFirst())).encoded
        var whole = FrameDecoder(frameBytesMax: 1 << 20)
        do {
            try whole.feed(framed)
            guard let frame = try whole.nextFrame() else { fatalError("a whole frame was not returned") }
            require(frame.kind == kind && frame.body == Array(bytes.dropFirst()), "the frame changed on its way through the decoder")
            check(frame)
        } catch {
            fatalError("a well-formed frame was refused: \(error)")
        }
    }

    /// Decodes the frame as its kind; what decodes must survive a round trip unchanged.
    static func check(_ frame: Frame) {
        func roundTrip<Value: WireCodable & Equatable>(_ type: Value.Type) {
            guard let value = try? frame.decode(type) else { return }
            guard let again = try? Frame(kind: Value.frameKind, body: value.encodedBody).decode(type) else {
                fatalError("a decoded \(type) did not decode once re-encoded")
            }
            require(again == value, "the round trip changed a \(type)")
        }
        switch frame.kind {
        case .message: roundTrip(Message.self)
        case .entry: roundTrip(Entry.self)
        case .hardState: roundTrip(HardState.self)
        case .snapshot: roundTrip(Snapshot.self)
        case .snapshotMetadata: roundTrip(SnapshotMetadata.self)
        case .membership: roundTrip(Membership.self)
        }
    }

    static let voters = [NodeID(1), NodeID(2), NodeID(3)]

    /// Node 1 of three voters. The first byte picks its role (follower, pre-candidate,
    /// candidate, leader) and how many ticks pass between messages; the rest, cut at 0xFF 0xFE,
    /// are Raft message bodies, each stepped in as sent to node 1, then Ready handled the way
    /// the shell does (persisted, applied, advanced).
    static func core(_ bytes: [UInt8]) {
        guard let first = bytes.first else { return }
        let configuration: RaftConfiguration
        do {
            configuration = try RaftConfiguration(electionTimeoutTicks: 10, heartbeatIntervalTicks: 1)
        } catch {
            fatalError("the harness's configuration was refused: \(error)")
        }
        guard var node = try? RaftNode(id: NodeID(1), configuration: configuration, restoring: .bootstrap(voters: voters), randomSeed: 7)
        else { fatalError("a bootstrap state was refused") }
        let wanted: Role = [.follower, .preCandidate, .candidate, .leader][Int(first % 4)]
        var ticks = 0
        while node.role != wanted, wanted != .follower, ticks < 200 {
            node.tick()
            ticks += 1
            switch node.role {
            case .preCandidate where wanted != .preCandidate:
                node.step(Message(from: NodeID(2), to: NodeID(1), term: node.term + 1, payload: .preVoteResponse(granted: true)))
            case .candidate where wanted == .leader:
                node.step(Message(from: NodeID(2), to: NodeID(1), term: node.term, payload: .voteResponse(granted: true)))
            default:
                break
            }
            drain(&node)
        }
        let ticksBetween = Int(first >> 2) % 8
        for piece in MembershipHarnesses.split(Array(bytes.dropFirst())) {
            if var message = try? Message.decode(body: piece) {
                message.to = NodeID(1)
                if message.from == NodeID(1) { message.from = NodeID(2) }
                let termBefore = node.term
                node.step(message)
                require(node.term >= termBefore, "the term went backwards")
                require(node.term < RaftLimits.valueCeiling, "the term reached the ceiling")
            }
            drain(&node)
            for _ in 0..<ticksBetween {
                node.tick()
                drain(&node)
            }
        }
    }

    /// What the shell does with each Ready, minus the disk and the network.
    static func drain(_ node: inout RaftNode) {
        var rounds = 0
        while let ready = node.ready(), rounds < 16 {
            var lastIndex: UInt64 = 0
            for entry in ready.committedEntries {
                require(entry.index > lastIndex, "committed entries out of order")
                lastIndex = entry.index
            }
            node.advance(ready)
            rounds += 1
        }
    }
}
