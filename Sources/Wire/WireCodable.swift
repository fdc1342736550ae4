import Raft

/// A value with a versioned binary layout. Encoding cannot fail; decoding validates every
/// invariant the Raft types enforce with preconditions (non-zero node IDs, disjoint memberships,
/// chunk offsets within the snapshot) so that bad bytes become a `WireError`, never a trap.
public protocol WireCodable {
    /// The frame kind that carries this value on its own.
    static var frameKind: FrameKind { get }
    func encode(into writer: inout ByteWriter)
    static func decode(from reader: inout ByteReader) throws(WireError) -> Self
}

extension WireCodable {
    /// The value's body bytes, without a frame.
    public var encodedBody: [UInt8] {
        var writer = ByteWriter()
        encode(into: &writer)
        return writer.bytes
    }

    /// Decodes a whole body: trailing bytes are an error.
    public static func decode(body: [UInt8]) throws(WireError) -> Self {
        var reader = ByteReader(body)
        let value = try decode(from: &reader)
        try reader.expectEnd()
        return value
    }
}

// MARK: - Node IDs

extension ByteWriter {
    public mutating func write(_ id: NodeID) { write(id.rawValue) }
    /// Zero stands for "none": `NodeID` reserves it for exactly this.
    public mutating func write(_ id: NodeID?) { write(id?.rawValue ?? 0) }
}

extension ByteReader {
    public mutating func readNodeID(_ field: String) throws(WireError) -> NodeID {
        guard let id = try readOptionalNodeID(field) else {
            throw .invalidValue(field: field, reason: "node ID 0 is reserved")
        }
        return id
    }

    public mutating func readOptionalNodeID(_ field: String) throws(WireError) -> NodeID? {
        let raw = try readUInt64(field)
        return raw == 0 ? nil : NodeID(raw)
    }

    mutating func readNodeIDs(_ field: String) throws(WireError) -> [NodeID] {
        let count = try readElementCount(field, elementBytesMin: 8)
        var ids: [NodeID] = []
        ids.reserveCapacity(count)
        for _ in 0..<count { ids.append(try readNodeID(field)) }
        return ids
    }
}

// MARK: - Membership

extension Membership: WireCodable {
    public static var frameKind: FrameKind { .membership }

    public func encode(into writer: inout ByteWriter) {
        writer.write(UInt32(voters.count))
        for id in voters { writer.write(id) }
        writer.write(UInt32(learners.count))
        for id in learners { writer.write(id) }
    }

    public static func decode(from reader: inout ByteReader) throws(WireError) -> Membership {
        let voters = try reader.readNodeIDs("membership.voters")
        let learners = try reader.readNodeIDs("membership.learners")
        // Membership.init traps on these; from outside they are bad input.
        let voterSet = Set(voters)
        guard voterSet.count == voters.count else {
            throw .invalidValue(field: "membership.voters", reason: "duplicate voter")
        }
        guard Set(learners).count == learners.count else {
            throw .invalidValue(field: "membership.learners", reason: "duplicate learner")
        }
        guard voterSet.isDisjoint(with: learners) else {
            throw .invalidValue(field: "membership", reason: "a node is both voter and learner")
        }
        return Membership(voters: voters, learners: learners)
    }
}

// MARK: - HardState

extension HardState: WireCodable {
    public static var frameKind: FrameKind { .hardState }

    public func encode(into writer: inout ByteWriter) {
        writer.write(term)
        writer.write(votedFor)
        writer.write(commitIndex)
    }

    public static func decode(from reader: inout ByteReader) throws(WireError) -> HardState {
        HardState(
            term: try reader.readUInt64("hardState.term"),
            votedFor: try reader.readOptionalNodeID("hardState.votedFor"),
            commitIndex: try reader.readUInt64("hardState.commitIndex"))
    }
}

// MARK: - Entry

extension Entry: WireCodable {
    public static var frameKind: FrameKind { .entry }

    /// term, index and payload tag: the least an encoded entry can take, used to bound counts.
    public static let encodedBytesMin = 17

    enum PayloadTag: UInt8 {
        case empty = 0, command = 1, membershipChange = 2, initialMembership = 3
    }

    enum ChangeTag: UInt8 {
        case addLearner = 0, promoteLearner = 1, removeNode = 2
    }

    public func encode(into writer: inout ByteWriter) {
        writer.write(term)
        writer.write(index)
        switch payload {
        case .empty:
            writer.write(PayloadTag.empty.rawValue)
        case .command(let data, let stamp):
            writer.write(PayloadTag.command.rawValue)
            writer.write(lengthPrefixed: data)
            writer.write(stamp != nil)
            if let stamp {
                writer.write(stamp.clientID)
                writer.write(stamp.sequence)
            }
        case .membershipChange(let change):
            writer.write(PayloadTag.membershipChange.rawValue)
            switch change {
            case .addLearner(let id): writer.write(ChangeTag.addLearner.rawValue); writer.write(id)
            case .promoteLearner(let id): writer.write(ChangeTag.promoteLearner.rawValue); writer.write(id)
            case .removeNode(let id): writer.write(ChangeTag.removeNode.rawValue); writer.write(id)
            }
        case .initialMembership(let membership):
            writer.write(PayloadTag.initialMembership.rawValue)
            membership.encode(into: &writer)
        }
    }

    public static func decode(from reader: inout ByteReader) throws(WireError) -> Entry {
        let term = try reader.readUInt64("entry.term")
        let index = try reader.readUInt64("entry.index")
        let rawTag = try reader.readUInt8("entry.payload")
        guard let tag = PayloadTag(rawValue: rawTag) else { throw .unknownTag(field: "entry.payload", tag: rawTag) }
        let payload: Payload
        switch tag {
        case .empty:
            payload = .empty
        case .command:
            let data = try reader.readLengthPrefixed("entry.command.data")
            var stamp: ClientStamp?
            if try reader.readBool("entry.command.hasStamp") {
                stamp = ClientStamp(
                    clientID: try reader.readUInt64("entry.command.clientID"),
                    sequence: try reader.readUInt64("entry.command.sequence"))
            }
            payload = .command(data: data, stamp: stamp)
        case .membershipChange:
            let rawChange = try reader.readUInt8("entry.membershipChange")
            guard let changeTag = ChangeTag(rawValue: rawChange) else {
                throw .unknownTag(field: "entry.membershipChange", tag: rawChange)
            }
            let id = try reader.readNodeID("entry.membershipChange.node")
            switch changeTag {
            case .addLearner: payload = .membershipChange(.addLearner(id))
            case .promoteLearner: payload = .membershipChange(.promoteLearner(id))
            case .removeNode: payload = .membershipChange(.removeNode(id))
            }
        case .initialMembership:
            payload = .initialMembership(try Membership.decode(from: &reader))
        }
        return Entry(term: term, index: index, payload: payload)
    }
}

extension ByteWriter {
    public mutating func write(entries: [Entry]) {
        precondition(entries.count <= Int(UInt32.max), "\(entries.count) entries exceed the 32-bit count")
        write(UInt32(entries.count))
        for entry in entries { entry.encode(into: &self) }
    }
}

extension ByteReader {
    public mutating func readEntries(_ field: String) throws(WireError) -> [Entry] {
        let count = try readElementCount(field, elementBytesMin: Entry.encodedBytesMin)
        var entries: [Entry] = []
        entries.reserveCapacity(count)
        for _ in 0..<count { entries.append(try Entry.decode(from: &self)) }
        return entries
    }
}

// MARK: - Snapshots

extension SnapshotMetadata: WireCodable {
    public static var frameKind: FrameKind { .snapshotMetadata }

    public func encode(into writer: inout ByteWriter) {
        writer.write(index)
        writer.write(term)
        membership.encode(into: &writer)
    }

    public static func decode(from reader: inout ByteReader) throws(WireError) -> SnapshotMetadata {
        SnapshotMetadata(
            index: try reader.readUInt64("snapshot.index"),
            term: try reader.readUInt64("snapshot.term"),
            membership: try Membership.decode(from: &reader))
    }
}

extension Snapshot: WireCodable {
    public static var frameKind: FrameKind { .snapshot }

    public func encode(into writer: inout ByteWriter) {
        metadata.encode(into: &writer)
        writer.write(lengthPrefixed: data)
    }

    public static func decode(from reader: inout ByteReader) throws(WireError) -> Snapshot {
        Snapshot(
            metadata: try SnapshotMetadata.decode(from: &reader),
            data: try reader.readLengthPrefixed("snapshot.data"))
    }
}
