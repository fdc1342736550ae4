import Foundation
import Raft
import Storage

/// Recovery of a write-ahead log from damaged bytes: open either refuses with a `StorageError`
/// or recovers a log that is itself consistent and opens again to the same state.
enum StorageHarness {
    static let configuration = WriteAheadLogConfiguration(segmentBytesMax: 256 * 1024, recordBytesMax: 16 * 1024,
                                                          snapshotBytesMax: 64 * 1024)
    /// tmpfs when there is one: each run writes, syncs and removes a directory.
    static let root: String = {
        let base = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
        return base + "/flotilla-fuzz-wal-\(getpid())"
    }()

    /// A real segment written by the log itself: a hard state and a few entries in two
    /// batches, so the input has records to damage.
    static let template: (name: String, bytes: [UInt8]) = {
        let directory = root + "/template"
        try? FileManager.default.removeItem(atPath: directory)
        try? FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        do {
            let (log, _) = try WriteAheadLog.open(directory: directory, configuration: configuration,
                                                  initialState: .bootstrap(voters: [NodeID(1), NodeID(2), NodeID(3)]))
            try log.append(WriteBatch(entries: [Entry(term: 2, index: 2, payload: .empty)],
                                      hardState: HardState(term: 2, votedFor: NodeID(1), commitIndex: 1)))
            try log.append(WriteBatch(entries: (3...5).map { Entry(term: 2, index: $0, payload: .command(data: [UInt8]("c\($0)".utf8), stamp: nil)) },
                                      hardState: HardState(term: 2, votedFor: NodeID(1), commitIndex: 4)))
            let name = log.segmentNames.last!
            log.close()
            return (name, Array(try Data(contentsOf: URL(fileURLWithPath: directory + "/" + name))))
        } catch {
            fatalError("the harness could not write its template log: \(error)")
        }
    }()

    /// The first two bytes are an offset into the template segment; the rest overwrite it from
    /// there (and extend it past its end).
    static func recovery(_ bytes: [UInt8]) {
        guard bytes.count >= 2 else { return }
        var segment = template.bytes
        let offset = (Int(bytes[0]) << 8 | Int(bytes[1])) % (segment.count + 1)
        let patch = bytes.dropFirst(2)
        for (position, byte) in patch.enumerated() {
            if offset + position < segment.count { segment[offset + position] = byte } else { segment.append(byte) }
        }
        let directory = root + "/run"
        try? FileManager.default.removeItem(atPath: directory)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            try Data(segment).write(to: URL(fileURLWithPath: directory + "/" + template.name))
        } catch {
            fatalError("the harness could not write its input: \(error)")
        }
        guard let (log, state) = try? WriteAheadLog.open(directory: directory, configuration: configuration) else { return }
        log.close()
        var expected = state.snapshot.metadata.index + 1
        for entry in state.entries {
            require(entry.index == expected, "recovered entries are not contiguous")
            expected += 1
        }
        // What recovered goes on into a Raft core, as at a restart: it may be refused (typed),
        // never trap.
        if let configuration = try? RaftConfiguration(electionTimeoutTicks: 10, heartbeatIntervalTicks: 1),
           var node = try? RaftNode(id: NodeID(1), configuration: configuration, restoring: state, randomSeed: 1) {
            for _ in 0..<12 { node.tick() }
            RaftHarnesses.drain(&node)
        }
        guard let (reopened, again) = try? WriteAheadLog.open(directory: directory, configuration: configuration) else {
            fatalError("a log that recovered once did not open again")
        }
        reopened.close()
        require(again == state, "a second open recovered a different state")
    }
}
