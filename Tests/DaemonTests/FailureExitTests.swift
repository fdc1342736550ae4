@testable import Daemon
import TestSupport
import Foundation
import Logging
import RaftReplica
import Registry
import Storage
import Testing

/// How flotillad's exit tells systemd what went wrong (Units/flotillad.service acts on it), and
/// that a registry snapshot that does not decode is refused, not skipped.
@Suite(.onBackgroundThreads) struct FailureExitTests {
    let full = StorageError.io(operation: "write", path: "/var/lib/flotilla/raft/wal-0000000000000002.log", errno: ENOSPC)

    @Test func aFailedDiskExits74AndCorruptData65() {
        #expect(Daemon.exitStatus(for: ReplicaStopped(failure: .storage(full))) == 74)
        #expect(Daemon.exitStatus(for: ReplicaStopped(failure: .storage(.unusableAfterFailure))) == 74)
        #expect(Daemon.exitStatus(for: ReplicaStopped(failure: .snapshotNotRestored(index: 40, reason: "bad magic"))) == 65)
        #expect(Daemon.exitStatus(for: ReplicaError.storage(full)) == 74)
        #expect(Daemon.exitStatus(for: ReplicaError.storage(.corruptSnapshot(file: "snap-1-1.snap", reason: "checksum mismatch"))) == 65)
        #expect(Daemon.exitStatus(for: ReplicaError.storage(.corruptRecord(segment: "wal-1.log", offset: 96))) == 65)
        #expect(Daemon.exitStatus(for: ReplicaError.snapshotNotRestored(index: 40, reason: "bad magic")) == 65)
        #expect(Daemon.exitStatus(for: ReplicaError.storage(.directoryLocked(path: "/var/lib/flotilla/raft"))) == 1)
    }

    @Test func theStopMessageSaysWhatFailedInTheSystemsWords() {
        let message = "\(ReplicaStopped(failure: .storage(full)))"
        #expect(message.contains("write /var/lib/flotilla/raft/wal-0000000000000002.log: No space left on device (errno 28)"), "\(message)")
        #expect(message.contains("no longer votes"), "\(message)")
        #expect("\(ReplicaError.storage(.corruptSnapshot(file: "snap-1-1.snap", reason: "checksum mismatch")))"
            == "the write-ahead log: snapshot snap-1-1.snap is corrupt: checksum mismatch")
    }

    /// The packaged unit does not restart into corrupt data (65) or a refused identity (78),
    /// and does restart after a disk failure (74), which room on the disk can cure.
    @Test func thePackagedUnitRestartsOnlyWhatARestartCanCure() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let unit = try String(contentsOf: root.appendingPathComponent("Units/flotillad.service"), encoding: .utf8)
        let line = unit.split(separator: "\n").first { $0.hasPrefix("RestartPreventExitStatus=") }
        let statuses = Set((line?.dropFirst("RestartPreventExitStatus=".count).split(separator: " ") ?? []).compactMap { Int32($0) })
        #expect(statuses == [Daemon.dataErrorExitStatus, MachineIdentityCheck.refusedExitStatus], "\(String(describing: line))")
        #expect(unit.contains("\nRestart=always\n"))
    }

    @Test func aRegistrySnapshotThatDoesNotDecodeIsRefusedAndChangesNothing() throws {
        let source = RegistryStore(logger: Logger(label: "test")) { _, _ in }
        let registry = RegistryStore(logger: Logger(label: "test")) { _, _ in }
        let snapshot = source.snapshot()
        try registry.restore(snapshot)
        var garbled = snapshot
        garbled[0] ^= 0xFF
        #expect(throws: RegistrySnapshotError.self) { try registry.restore(garbled) }
        #expect(throws: RegistrySnapshotError.self) { try registry.restore(Array(snapshot.prefix(snapshot.count / 2))) }
        #expect(registry.snapshot() == snapshot)
    }
}
