/// A compact, versioned binary encoding of `MembershipMessage`, so that packing piggybacked
/// gossip uses real sizes.
///
/// Layout (all integers LEB128 varints unless noted; strings are a varint length and UTF-8):
/// ```
/// message  := version:u8(=1) type:u8 body [gossip-count gossip*]   (no gossip part on push-pull)
/// ping     := seq targetID
/// ping-req := seq targetID host port:u16be wantsNack:u8
/// ack/nack := seq
/// push-pull:= kind:u8 count member*
/// member   := id host port:u16be role:u8 status:u8 incarnation version metadata
/// metadata := count (key value)*        keys non-empty, strictly ascending
/// gossip   := 1 alive-member (member without status) | 2 id inc from | 3 id inc from
/// ```
/// The decoder never traps: every malformed input is a typed `MembershipCodecError`.
public enum MembershipCodec {
    public static let version: UInt8 = 1

    enum MessageType: UInt8 {
        case ping = 1, pingRequest = 2, ack = 3, nack = 4, gossip = 5, pushPull = 6
    }

    enum GossipType: UInt8 {
        case alive = 1, suspect = 2, dead = 3
    }

    /// The largest header of any datagram: version, type, a ping-req with the longest ID and host,
    /// and the gossip count. Piggyback packing budgets against exact sizes; this is for the
    /// configuration check that one alive message always fits.
    static let datagramHeaderBytesMax = 2 + 5 + (2 + MemberID.bytesMax) + (2 + MemberAddress.hostBytesMax) + 2 + 1 + 2

    /// The largest alive gossip entry given the metadata bound (metadata counted as encoded).
    static func aliveBytesMax(metadataBytesMax: Int) -> Int {
        1 + (2 + MemberID.bytesMax) + (2 + MemberAddress.hostBytesMax) + 2 + 1 + 10
            + (1 + Member.versionBytesMax) + metadataBytesMax
    }

    // MARK: Sizes

    static func varintBytes(_ value: UInt64) -> Int {
        var value = value
        var count = 1
        while value >= 0x80 {
            value >>= 7
            count += 1
        }
        return count
    }

    static func stringBytes(_ string: String) -> Int {
        let count = string.utf8.count
        return varintBytes(UInt64(count)) + count
    }

    /// The encoded size of metadata; `metadataBytesMax` bounds this number.
    public static func encodedBytes(of metadata: MemberMetadata) -> Int {
        metadata.entries.reduce(varintBytes(UInt64(metadata.entries.count))) {
            $0 + stringBytes($1.key) + stringBytes($1.value)
        }
    }

    static func memberBytes(_ member: Member, withStatus: Bool) -> Int {
        stringBytes(member.id.rawValue) + stringBytes(member.address.host) + 2 + 1 + (withStatus ? 1 : 0)
            + varintBytes(member.incarnation) + stringBytes(member.version) + encodedBytes(of: member.metadata)
    }

    /// The bytes one gossip entry adds to a datagram.
    public static func encodedBytes(of gossip: Gossip) -> Int {
        switch gossip {
        case .alive(let member):
            return 1 + memberBytes(member, withStatus: false)
        case .suspect(let id, let incarnation, let from), .dead(let id, let incarnation, let from):
            return 1 + stringBytes(id.rawValue) + varintBytes(incarnation) + stringBytes(from.rawValue)
        }
    }

    /// The bytes of a message without its gossip entries (but with the gossip count for
    /// `count` entries).
    public static func encodedHeaderBytes(of body: MembershipMessage.Body, gossipCount: Int) -> Int {
        let gossipPart = varintBytes(UInt64(gossipCount))
        switch body {
        case .ping(let ping):
            return 2 + varintBytes(UInt64(ping.sequenceNumber)) + stringBytes(ping.targetID.rawValue) + gossipPart
        case .pingRequest(let request):
            return 2 + varintBytes(UInt64(request.sequenceNumber)) + stringBytes(request.targetID.rawValue)
                + stringBytes(request.targetAddress.host) + 2 + 1 + gossipPart
        case .ack(let ack):
            return 2 + varintBytes(UInt64(ack.sequenceNumber)) + gossipPart
        case .nack(let nack):
            return 2 + varintBytes(UInt64(nack.sequenceNumber)) + gossipPart
        case .gossip:
            return 2 + gossipPart
        case .pushPull(let pushPull):
            return 3 + varintBytes(UInt64(pushPull.members.count))
                + pushPull.members.reduce(0) { $0 + memberBytes($1, withStatus: true) }
        }
    }

    /// Exactly `encode(message).count`, computed without encoding.
    public static func encodedBytes(of message: MembershipMessage) -> Int {
        encodedHeaderBytes(of: message.body, gossipCount: message.gossip.count)
            + message.gossip.reduce(0) { $0 + encodedBytes(of: $1) }
    }

    // MARK: Encoding

    public static func encode(_ message: MembershipMessage) -> [UInt8] {
        var writer = Writer()
        writer.bytes.reserveCapacity(encodedBytes(of: message))
        writer.byte(version)
        switch message.body {
        case .ping(let ping):
            writer.byte(MessageType.ping.rawValue)
            writer.varint(UInt64(ping.sequenceNumber))
            writer.string(ping.targetID.rawValue)
        case .pingRequest(let request):
            writer.byte(MessageType.pingRequest.rawValue)
            writer.varint(UInt64(request.sequenceNumber))
            writer.string(request.targetID.rawValue)
            writer.string(request.targetAddress.host)
            writer.port(request.targetAddress.port)
            writer.byte(request.wantsNack ? 1 : 0)
        case .ack(let ack):
            writer.byte(MessageType.ack.rawValue)
            writer.varint(UInt64(ack.sequenceNumber))
        case .nack(let nack):
            writer.byte(MessageType.nack.rawValue)
            writer.varint(UInt64(nack.sequenceNumber))
        case .gossip:
            writer.byte(MessageType.gossip.rawValue)
        case .pushPull(let pushPull):
            writer.byte(MessageType.pushPull.rawValue)
            writer.byte(pushPull.kind.rawValue)
            writer.varint(UInt64(pushPull.members.count))
            for member in pushPull.members { writer.member(member, withStatus: true) }
            return writer.bytes
        }
        writer.varint(UInt64(message.gossip.count))
        for entry in message.gossip {
            switch entry {
            case .alive(let member):
                writer.byte(GossipType.alive.rawValue)
                writer.member(member, withStatus: false)
            case .suspect(let id, let incarnation, let from):
                writer.byte(GossipType.suspect.rawValue)
                writer.string(id.rawValue)
                writer.varint(incarnation)
                writer.string(from.rawValue)
            case .dead(let id, let incarnation, let from):
                writer.byte(GossipType.dead.rawValue)
                writer.string(id.rawValue)
                writer.varint(incarnation)
                writer.string(from.rawValue)
            }
        }
        return writer.bytes
    }

    struct Writer {
        var bytes: [UInt8] = []

        mutating func byte(_ value: UInt8) { bytes.append(value) }

        mutating func varint(_ value: UInt64) {
            var value = value
            while value >= 0x80 {
                bytes.append(UInt8(truncatingIfNeeded: value) | 0x80)
                value >>= 7
            }
            bytes.append(UInt8(value))
        }

        mutating func string(_ value: String) {
            varint(UInt64(value.utf8.count))
            bytes.append(contentsOf: value.utf8)
        }

        mutating func port(_ value: UInt16) {
            bytes.append(UInt8(value >> 8))
            bytes.append(UInt8(value & 0xFF))
        }

        mutating func member(_ member: Member, withStatus: Bool) {
            string(member.id.rawValue)
            string(member.address.host)
            port(member.address.port)
            byte(member.role.rawValue)
            if withStatus { byte(member.status.rawValue) }
            varint(member.incarnation)
            string(member.version)
            varint(UInt64(member.metadata.entries.count))
            for entry in member.metadata.entries {
                string(entry.key)
                string(entry.value)
            }
        }
    }

    // MARK: Decoding

    /// Decodes one message. `metadataBytesMax` and `membersMax` are the receiver's bounds
    /// (normally from its `MembershipConfiguration`); anything larger is rejected.
    public static func decode(_ bytes: [UInt8], metadataBytesMax: Int = 512,
                              membersMax: Int = 16_384) throws(MembershipCodecError) -> MembershipMessage {
        var reader = Reader(bytes: bytes, metadataBytesMax: metadataBytesMax)
        let messageVersion = try reader.byte()
        guard messageVersion == version else { throw .unsupportedVersion(messageVersion) }
        let typeByte = try reader.byte()
        guard let type = MessageType(rawValue: typeByte) else { throw .unknownMessageType(typeByte) }
        let body: MembershipMessage.Body
        switch type {
        case .ping:
            body = .ping(Ping(sequenceNumber: try reader.sequenceNumber(), targetID: try reader.memberID()))
        case .pingRequest:
            let sequenceNumber = try reader.sequenceNumber()
            let targetID = try reader.memberID()
            let address = try reader.address()
            let flag = try reader.byte()
            guard flag <= 1 else { throw .invalidValue(field: "wantsNack", value: UInt64(flag)) }
            body = .pingRequest(PingRequest(sequenceNumber: sequenceNumber, targetID: targetID,
                                            targetAddress: address, wantsNack: flag == 1))
        case .ack:
            body = .ack(Ack(sequenceNumber: try reader.sequenceNumber()))
        case .nack:
            body = .nack(Nack(sequenceNumber: try reader.sequenceNumber()))
        case .gossip:
            body = .gossip
        case .pushPull:
            let kindByte = try reader.byte()
            guard let kind = PushPull.Kind(rawValue: kindByte) else {
                throw .invalidValue(field: "pushPull.kind", value: UInt64(kindByte))
            }
            let count = try reader.count(max: membersMax + 1, field: "pushPull.members")
            var members: [Member] = []
            members.reserveCapacity(count)
            for _ in 0..<count { members.append(try reader.member(withStatus: true)) }
            try reader.expectEnd()
            return MembershipMessage(.pushPull(PushPull(kind: kind, members: members)))
        }
        // A datagram of 64 KiB cannot hold more entries than this (each is at least 4 bytes).
        let gossipCount = try reader.count(max: 16_384, field: "gossip")
        var gossip: [Gossip] = []
        gossip.reserveCapacity(gossipCount)
        for _ in 0..<gossipCount {
            let entryByte = try reader.byte()
            guard let entryType = GossipType(rawValue: entryByte) else { throw .unknownGossipType(entryByte) }
            switch entryType {
            case .alive:
                gossip.append(.alive(try reader.member(withStatus: false)))
            case .suspect:
                gossip.append(.suspect(try reader.memberID(), incarnation: try reader.varint(), from: try reader.memberID()))
            case .dead:
                gossip.append(.dead(try reader.memberID(), incarnation: try reader.varint(), from: try reader.memberID()))
            }
        }
        try reader.expectEnd()
        return MembershipMessage(body, gossip: gossip)
    }

    struct Reader {
        let bytes: [UInt8]
        let metadataBytesMax: Int
        var offset = 0

        init(bytes: [UInt8], metadataBytesMax: Int) {
            self.bytes = bytes
            self.metadataBytesMax = metadataBytesMax
        }

        mutating func byte() throws(MembershipCodecError) -> UInt8 {
            guard offset < bytes.count else { throw .truncated(offset: offset) }
            defer { offset += 1 }
            return bytes[offset]
        }

        mutating func varint() throws(MembershipCodecError) -> UInt64 {
            var result: UInt64 = 0
            var shift: UInt64 = 0
            let start = offset
            while true {
                let next = try byte()
                // The tenth byte may only carry the top bit of a UInt64.
                if shift == 63 && next > 1 { throw .varintOverflow(offset: start) }
                result |= UInt64(next & 0x7F) << shift
                if next & 0x80 == 0 {
                    // Reject non-minimal encodings so every message has exactly one encoding.
                    if next == 0 && shift > 0 { throw .varintOverflow(offset: start) }
                    return result
                }
                shift += 7
                if shift > 63 { throw .varintOverflow(offset: start) }
            }
        }

        mutating func sequenceNumber() throws(MembershipCodecError) -> UInt32 {
            let value = try varint()
            guard value <= UInt64(UInt32.max) else { throw .invalidValue(field: "sequenceNumber", value: value) }
            return UInt32(value)
        }

        mutating func count(max: Int, field: String) throws(MembershipCodecError) -> Int {
            let value = try varint()
            // Also bounded by the remaining bytes: every item takes at least one.
            guard value <= UInt64(max), value <= UInt64(bytes.count - offset) else {
                throw .tooMany(field: field, count: value)
            }
            return Int(value)
        }

        mutating func string(field: String, bytesMax: Int, allowEmpty: Bool) throws(MembershipCodecError) -> String {
            let length = try varint()
            guard length <= UInt64(bytesMax), allowEmpty || length > 0 else {
                throw .invalidLength(field: field, length: length)
            }
            let count = Int(length)
            guard count <= bytes.count - offset else { throw .truncated(offset: offset) }
            let slice = bytes[offset..<(offset + count)]
            guard let string = String(validating: slice, as: UTF8.self) else { throw .invalidUTF8(field: field) }
            offset += count
            return string
        }

        mutating func memberID() throws(MembershipCodecError) -> MemberID {
            MemberID(try string(field: "memberID", bytesMax: MemberID.bytesMax, allowEmpty: false))
        }

        mutating func address() throws(MembershipCodecError) -> MemberAddress {
            let host = try string(field: "host", bytesMax: MemberAddress.hostBytesMax, allowEmpty: false)
            let high = try byte()
            let low = try byte()
            return MemberAddress(host: host, port: UInt16(high) << 8 | UInt16(low))
        }

        mutating func member(withStatus: Bool) throws(MembershipCodecError) -> Member {
            let id = try memberID()
            let address = try address()
            let roleByte = try byte()
            guard let role = MemberRole(rawValue: roleByte) else { throw .invalidValue(field: "role", value: UInt64(roleByte)) }
            var status = MemberStatus.alive
            if withStatus {
                let statusByte = try byte()
                guard let decoded = MemberStatus(rawValue: statusByte) else {
                    throw .invalidValue(field: "status", value: UInt64(statusByte))
                }
                status = decoded
            }
            let incarnation = try varint()
            let version = try string(field: "version", bytesMax: Member.versionBytesMax, allowEmpty: true)
            let metadataStart = offset
            let entryCount = try count(max: metadataBytesMax, field: "metadata")
            var entries: [MemberMetadata.Entry] = []
            entries.reserveCapacity(entryCount)
            for _ in 0..<entryCount {
                let key = try string(field: "metadata.key", bytesMax: metadataBytesMax, allowEmpty: false)
                let value = try string(field: "metadata.value", bytesMax: metadataBytesMax, allowEmpty: true)
                if let last = entries.last, !(last.key < key) { throw .metadataNotSorted(key: key) }
                entries.append(MemberMetadata.Entry(key: key, value: value))
            }
            if offset - metadataStart > metadataBytesMax {
                throw .invalidLength(field: "metadata", length: UInt64(offset - metadataStart))
            }
            return Member(id: id, address: address, metadata: MemberMetadata(sortedEntries: entries), role: role,
                          version: version, incarnation: incarnation, status: status)
        }

        func expectEnd() throws(MembershipCodecError) {
            guard offset == bytes.count else { throw .trailingBytes(count: bytes.count - offset) }
        }
    }
}

public enum MembershipCodecError: Error, Hashable, Sendable {
    case truncated(offset: Int)
    case unsupportedVersion(UInt8)
    case unknownMessageType(UInt8)
    case unknownGossipType(UInt8)
    case varintOverflow(offset: Int)
    case invalidValue(field: String, value: UInt64)
    case invalidLength(field: String, length: UInt64)
    case invalidUTF8(field: String)
    case tooMany(field: String, count: UInt64)
    case metadataNotSorted(key: String)
    case trailingBytes(count: Int)
}
