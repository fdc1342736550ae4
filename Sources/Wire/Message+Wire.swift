import Raft

extension Message: WireCodable {
    public static var frameKind: FrameKind { .message }

    /// One tag per `Message.Payload` case. Tags are part of the format: never renumber, only add
    /// (and bump `Frame.version` if an old peer must not see the new case).
    enum PayloadTag: UInt8 {
        case preVoteRequest = 1, preVoteResponse = 2, voteRequest = 3, voteResponse = 4
        case appendEntries = 5, appendEntriesResponse = 6, heartbeat = 7, heartbeatResponse = 8
        case installSnapshot = 9, installSnapshotResponse = 10, timeoutNow = 11
    }

    enum ResponseTag: UInt8 {
        case accepted = 0, rejected = 1, staleTerm = 2
    }

    public func encode(into writer: inout ByteWriter) {
        writer.write(from)
        writer.write(to)
        writer.write(term)
        switch payload {
        case .preVoteRequest(let request):
            writer.write(PayloadTag.preVoteRequest.rawValue)
            request.encode(into: &writer)
        case .preVoteResponse(let granted):
            writer.write(PayloadTag.preVoteResponse.rawValue)
            writer.write(granted)
        case .voteRequest(let request):
            writer.write(PayloadTag.voteRequest.rawValue)
            request.encode(into: &writer)
        case .voteResponse(let granted):
            writer.write(PayloadTag.voteResponse.rawValue)
            writer.write(granted)
        case .appendEntries(let append):
            writer.write(PayloadTag.appendEntries.rawValue)
            writer.write(append.prevLogIndex)
            writer.write(append.prevLogTerm)
            writer.write(append.leaderCommitIndex)
            writer.write(entries: append.entries)
        case .appendEntriesResponse(let response):
            writer.write(PayloadTag.appendEntriesResponse.rawValue)
            switch response {
            case .accepted(let matchIndex):
                writer.write(ResponseTag.accepted.rawValue)
                writer.write(matchIndex)
            case .rejected(let rejectedIndex, let hintIndex, let hintTerm):
                writer.write(ResponseTag.rejected.rawValue)
                writer.write(rejectedIndex)
                writer.write(hintIndex)
                writer.write(hintTerm)
            case .staleTerm:
                writer.write(ResponseTag.staleTerm.rawValue)
            }
        case .heartbeat(let heartbeat):
            writer.write(PayloadTag.heartbeat.rawValue)
            writer.write(heartbeat.commitIndex)
            writer.write(heartbeat.readRound)
        case .heartbeatResponse(let response):
            writer.write(PayloadTag.heartbeatResponse.rawValue)
            writer.write(response.readRound)
        case .installSnapshot(let chunk):
            writer.write(PayloadTag.installSnapshot.rawValue)
            chunk.metadata.encode(into: &writer)
            writer.write(count: chunk.totalBytes)
            writer.write(count: chunk.offset)
            writer.write(lengthPrefixed: chunk.data)
        case .installSnapshotResponse(let response):
            writer.write(PayloadTag.installSnapshotResponse.rawValue)
            writer.write(response.snapshotIndex)
            writer.write(count: response.bytesReceived)
        case .timeoutNow:
            writer.write(PayloadTag.timeoutNow.rawValue)
        }
    }

    public static func decode(from reader: inout ByteReader) throws(WireError) -> Message {
        let from = try reader.readNodeID("message.from")
        let to = try reader.readNodeID("message.to")
        let term = try reader.readUInt64("message.term")
        let rawTag = try reader.readUInt8("message.payload")
        guard let tag = PayloadTag(rawValue: rawTag) else { throw .unknownTag(field: "message.payload", tag: rawTag) }
        return Message(from: from, to: to, term: term, payload: try decodePayload(tag, from: &reader))
    }

    static func decodePayload(_ tag: PayloadTag, from reader: inout ByteReader) throws(WireError) -> Payload {
        switch tag {
        case .preVoteRequest: return .preVoteRequest(try VoteRequest.decode(from: &reader))
        case .preVoteResponse: return .preVoteResponse(granted: try reader.readBool("preVoteResponse.granted"))
        case .voteRequest: return .voteRequest(try VoteRequest.decode(from: &reader))
        case .voteResponse: return .voteResponse(granted: try reader.readBool("voteResponse.granted"))
        case .appendEntries:
            let prevLogIndex = try reader.readUInt64("appendEntries.prevLogIndex")
            let prevLogTerm = try reader.readUInt64("appendEntries.prevLogTerm")
            let leaderCommitIndex = try reader.readUInt64("appendEntries.leaderCommitIndex")
            let entries = try reader.readEntries("appendEntries.entries")
            return .appendEntries(AppendEntries(
                prevLogIndex: prevLogIndex, prevLogTerm: prevLogTerm, entries: entries, leaderCommitIndex: leaderCommitIndex))
        case .appendEntriesResponse:
            return .appendEntriesResponse(try decodeAppendEntriesResponse(from: &reader))
        case .heartbeat:
            return .heartbeat(Heartbeat(
                commitIndex: try reader.readUInt64("heartbeat.commitIndex"),
                readRound: try reader.readUInt64("heartbeat.readRound")))
        case .heartbeatResponse:
            return .heartbeatResponse(HeartbeatResponse(readRound: try reader.readUInt64("heartbeatResponse.readRound")))
        case .installSnapshot:
            return .installSnapshot(try decodeChunk(from: &reader))
        case .installSnapshotResponse:
            return .installSnapshotResponse(InstallSnapshotResponse(
                snapshotIndex: try reader.readUInt64("installSnapshotResponse.snapshotIndex"),
                bytesReceived: try reader.readCount("installSnapshotResponse.bytesReceived")))
        case .timeoutNow:
            return .timeoutNow
        }
    }

    static func decodeAppendEntriesResponse(from reader: inout ByteReader) throws(WireError) -> AppendEntriesResponse {
        let raw = try reader.readUInt8("appendEntriesResponse")
        guard let tag = ResponseTag(rawValue: raw) else { throw .unknownTag(field: "appendEntriesResponse", tag: raw) }
        switch tag {
        case .accepted:
            return .accepted(matchIndex: try reader.readUInt64("appendEntriesResponse.matchIndex"))
        case .rejected:
            return .rejected(
                rejectedIndex: try reader.readUInt64("appendEntriesResponse.rejectedIndex"),
                hintIndex: try reader.readUInt64("appendEntriesResponse.hintIndex"),
                hintTerm: try reader.readUInt64("appendEntriesResponse.hintTerm"))
        case .staleTerm:
            return .staleTerm
        }
    }

    /// The core compares `offset` with what it holds and `offset + data.count` with `totalBytes`;
    /// values that could overflow that arithmetic are refused here.
    static func decodeChunk(from reader: inout ByteReader) throws(WireError) -> InstallSnapshotChunk {
        let metadata = try SnapshotMetadata.decode(from: &reader)
        let totalBytes = try reader.readCount("installSnapshot.totalBytes")
        let offset = try reader.readCount("installSnapshot.offset")
        let data = try reader.readLengthPrefixed("installSnapshot.data")
        guard offset <= totalBytes, data.count <= totalBytes - offset else {
            throw .invalidValue(field: "installSnapshot",
                                reason: "chunk at \(offset) of \(data.count) bytes overruns \(totalBytes) bytes")
        }
        return InstallSnapshotChunk(metadata: metadata, totalBytes: totalBytes, offset: offset, data: data)
    }
}

extension VoteRequest {
    func encode(into writer: inout ByteWriter) {
        writer.write(lastLogIndex)
        writer.write(lastLogTerm)
        writer.write(isLeadershipTransfer)
    }

    static func decode(from reader: inout ByteReader) throws(WireError) -> VoteRequest {
        VoteRequest(
            lastLogIndex: try reader.readUInt64("voteRequest.lastLogIndex"),
            lastLogTerm: try reader.readUInt64("voteRequest.lastLogTerm"),
            isLeadershipTransfer: try reader.readBool("voteRequest.isLeadershipTransfer"))
    }
}
