// Log compaction and InstallSnapshot (§7).

extension RaftNode {
    /// Compacts the log through `index`, which the application has applied and captured in `data`
    /// (§7: "each server takes snapshots independently, covering just the committed entries in its
    /// log"). Returns the snapshot for the shell to persist; the shell may then drop stored entries
    /// through `index`. The core keeps this one snapshot in memory to send to lagging followers.
    public mutating func createSnapshot(at index: UInt64, data: [UInt8]) throws(SnapshotError) -> Snapshot {
        guard index <= appliedIndex else { throw .notApplied(index: index, appliedIndex: appliedIndex) }
        guard index > log.snapshotIndex else {
            throw .alreadyCompacted(index: index, snapshotIndex: log.snapshotIndex)
        }
        let metadata = SnapshotMetadata(index: index, term: log.term(at: index)!, membership: log.membership(at: index))
        let snapshot = Snapshot(metadata: metadata, data: data)
        log.compact(to: snapshot)
        return snapshot
    }

    mutating func startSnapshot(to peer: NodeID) {
        progress[peer]!.becomeSnapshot(index: log.snapshotIndex)
        sendSnapshotChunk(to: peer)
    }

    /// Sends the chunk that starts at the follower's acknowledged offset. One chunk is in flight
    /// per follower; the next goes when this one is acknowledged, or again after a silent
    /// heartbeat interval (see `retransmitStalledSnapshots`).
    mutating func sendSnapshotChunk(to peer: NodeID) {
        guard case .snapshot(let index, var offset, _) = progress[peer]!.state else {
            preconditionFailure("sendSnapshotChunk to \(peer) in state \(progress[peer]!.state)")
        }
        if index != log.snapshotIndex {
            // We compacted again since the transfer began: start over with the newer snapshot.
            progress[peer]!.becomeSnapshot(index: log.snapshotIndex)
            offset = 0
        }
        let data = log.snapshot.data
        let start = min(offset, data.count)
        let end = min(start + configuration.snapshotChunkBytesMax, data.count)
        send(to: peer, .installSnapshot(InstallSnapshotChunk(
            metadata: log.snapshot.metadata, totalBytes: data.count, offset: start, data: Array(data[start..<end]))))
    }

    mutating func handleSnapshotResponse(from peer: NodeID, _ response: InstallSnapshotResponse) {
        guard case .snapshot(let index, let acknowledged, let atHeartbeat) = progress[peer]!.state,
              response.snapshotIndex == index, response.bytesReceived != acknowledged else { return }
        // The follower's count is the truth, even when it went down (it restarted and lost its
        // buffer). Equal counts (duplicates) are ignored above so duplicates cannot multiply sends.
        let received = min(response.bytesReceived, log.snapshot.data.count)
        progress[peer]!.state = .snapshot(index: index, bytesAcknowledged: received,
                                          bytesAcknowledgedAtLastHeartbeat: atHeartbeat)
        if received < log.snapshot.data.count { sendSnapshotChunk(to: peer) }
    }

    mutating func retransmitStalledSnapshots() {
        for peer in progress.keys.sorted() {
            guard case .snapshot(let index, let acknowledged, let atHeartbeat) = progress[peer]!.state else { continue }
            progress[peer]!.state = .snapshot(index: index, bytesAcknowledged: acknowledged,
                                              bytesAcknowledgedAtLastHeartbeat: acknowledged)
            if acknowledged == atHeartbeat { sendSnapshotChunk(to: peer) }
        }
    }

    /// Figure 13, InstallSnapshot receiver: chunks are accepted in order; the last one installs.
    mutating func handleSnapshotChunk(from leader: NodeID, _ chunk: InstallSnapshotChunk) {
        let metadata = chunk.metadata
        if metadata.index <= log.commitIndex {
            // We already hold everything the snapshot covers.
            receivingSnapshot = nil
            send(to: leader, .appendEntriesResponse(.accepted(matchIndex: log.commitIndex)))
            return
        }
        guard chunk.totalBytes <= configuration.snapshotBytesMax else { return }
        if chunk.offset == 0 {
            receivingSnapshot = ReceivingSnapshot(metadata: metadata, totalBytes: chunk.totalBytes, data: [])
        }
        guard var receiving = receivingSnapshot, receiving.metadata == metadata,
              receiving.totalBytes == chunk.totalBytes, chunk.offset == receiving.data.count else {
            let held = receivingSnapshot.flatMap { $0.metadata == metadata ? $0.data.count : nil } ?? 0
            send(to: leader, .installSnapshotResponse(InstallSnapshotResponse(snapshotIndex: metadata.index, bytesReceived: held)))
            return
        }
        receiving.data.append(contentsOf: chunk.data)
        guard receiving.data.count == receiving.totalBytes else {
            receivingSnapshot = receiving
            send(to: leader, .installSnapshotResponse(InstallSnapshotResponse(
                snapshotIndex: metadata.index, bytesReceived: receiving.data.count)))
            return
        }
        receivingSnapshot = nil
        let snapshot = Snapshot(metadata: metadata, data: receiving.data)
        log.install(snapshot)
        snapshotToPersist = snapshot
        appliedHandedOutIndex = metadata.index
        send(to: leader, .appendEntriesResponse(.accepted(matchIndex: metadata.index)))
    }
}

public enum SnapshotError: Error, Equatable, Sendable {
    /// A snapshot may only cover entries the application has applied.
    case notApplied(index: UInt64, appliedIndex: UInt64)
    case alreadyCompacted(index: UInt64, snapshotIndex: UInt64)
}
