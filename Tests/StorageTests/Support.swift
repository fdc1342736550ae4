import Foundation
import Raft
@testable import Storage

/// A unique directory on the real disk, removed when the test ends.
final class TemporaryDirectory {
    let path: String

    init(_ label: String = #function) {
        var template = Array("/tmp/flotilla-wal-test-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil, "mkdtemp failed: \(errno)")
        path = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    var wal: String { path + "/wal" }

    /// A copy of the log directory as it is on disk now: what a crash at this moment would leave
    /// (every write before it was synced).
    func copyOfLog(_ name: String) throws -> String {
        let copy = path + "/" + name
        try FileManager.default.copyItem(atPath: wal, toPath: copy)
        try? FileManager.default.removeItem(atPath: copy + "/LOCK")
        return copy
    }
}

func files(in directory: String) -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
}

func segmentPaths(in directory: String) -> [String] {
    files(in: directory).filter { $0.hasPrefix("wal-") && $0.hasSuffix(".log") }.map { directory + "/" + $0 }
}

func readBytes(_ path: String) -> [UInt8] { Array(FileManager.default.contents(atPath: path)!) }
func writeBytes(_ path: String, _ bytes: [UInt8]) { _ = FileManager.default.createFile(atPath: path, contents: Data(bytes)) }

func entry(_ index: UInt64, term: UInt64, bytes: Int = 8) -> Entry {
    Entry(term: term, index: index, payload: .command(data: (0..<bytes).map { UInt8(truncatingIfNeeded: Int(index) &+ $0) },
                                                      stamp: ClientStamp(clientID: 7, sequence: index)))
}

func entries(_ range: ClosedRange<UInt64>, term: UInt64, bytes: Int = 8) -> [Entry] {
    range.map { entry($0, term: term, bytes: bytes) }
}

/// What the log must recover: the batches applied to a plain in-memory state, following the
/// order `Ready` prescribes.
struct ModelLog {
    var state: PersistentState

    mutating func apply(_ batch: WriteBatch) {
        if let snapshot = batch.snapshot {
            state.snapshot = snapshot
            state.entries = []
        }
        if let first = batch.entries.first {
            state.entries.removeAll { $0.index >= first.index }
            state.entries.append(contentsOf: batch.entries)
        }
        if let hardState = batch.hardState { state.hardState = hardState }
    }

    mutating func compact(through snapshot: Snapshot) {
        state.snapshot = snapshot
        state.entries.removeAll { $0.index <= snapshot.metadata.index }
    }
}

let voters = [NodeID(1), NodeID(2), NodeID(3)]
let smallConfiguration = WriteAheadLogConfiguration(segmentBytesMax: 4096, recordBytesMax: 1024, snapshotBytesMax: 1 << 20)
