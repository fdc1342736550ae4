import Foundation
import Raft
import Storage
import Testing
import TestSupport

@testable import RaftReplica

/// A replica whose disk fails, or whose state machine cannot take a snapshot, stops taking part
/// and says so on `failures`, once; the others go on without it. Real write-ahead logs on real
/// (small, really full) file systems, real sockets.
@Suite("A replica whose disk or snapshot fails stops and says why")
struct ReplicaFailureTests {
    /// The first failure `replica` reports, or nil if none comes within `timeout`.
    static func firstFailure(of replica: RaftReplica, timeout: Duration = .seconds(60)) async -> ReplicaFailure? {
        await withTaskGroup(of: ReplicaFailure?.self) { group in
            group.addTask {
                for await failure in replica.failures { return failure }
                return nil
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
    }

    /// A 4 KiB command: a few of them need new pages of a full tmpfs.
    static func pageCommand(_ number: Int) -> [UInt8] {
        let label = command(number)
        return label + [UInt8](repeating: UInt8(ascii: "."), count: 4096 - label.count)
    }

    @Test(.enabled(if: SmallFileSystem.missingCapability == nil, "needs \(SmallFileSystem.missingCapability ?? "")"))
    func aLeaderWhoseDiskFillsStopsAndTheOthersElectAndCommit() async throws {
        let cluster = LoopbackCluster()
        try FileManager.default.createDirectory(atPath: cluster.root, withIntermediateDirectories: true)
        // Each replica's log on a file system of its own, 2 MiB: room for the test's log.
        let disks = try Dictionary(uniqueKeysWithValues: cluster.ids.map {
            ($0, try SmallFileSystem.mount(at: cluster.directory(of: $0), bytes: 2 * 1024 * 1024))
        })
        defer {
            for disk in disks.values { try? disk.unmount() }
            try? FileManager.default.removeItem(atPath: cluster.root)
        }
        try await cluster.start()
        do {
            for number in 0..<5 { _ = try await proposeOnLeader(command(number), among: Array(cluster.replicas.values)) }
            let failing = try await cluster.agreedLeader()
            let failingID = failing.configuration.id
            try disks[failingID]!.fill()

            // The next writes need pages the file system no longer has; the first that fails
            // stops the replica, and every proposal after it is refused, not left waiting.
            var refused: ProposalError?
            for number in 5..<200 {
                do {
                    _ = try await failing.propose(Self.pageCommand(number))
                } catch {
                    refused = error
                    break
                }
            }
            #expect(refused == .stopped, "proposals on the full leader: \(String(describing: refused))")
            let failure = await Self.firstFailure(of: failing)
            guard case .storage(.io(_, let path, let errno)) = failure else {
                Issue.record("the failure reported: \(String(describing: failure))")
                throw CancellationError()
            }
            #expect(errno == ENOSPC && path.hasPrefix(cluster.directory(of: failingID)), "\(path) errno \(errno)")
            #expect("\(failure!)".contains("No space left on device"), "\(failure!)")
            let status = await failing.status()
            #expect(status?.failure == failure)
            do {
                _ = try await failing.propose(command(1_000))
                Issue.record("a stopped replica accepted a proposal")
            } catch {
                #expect(error == .stopped)
            }

            // The two others elect one of them and commit without it.
            let others = cluster.ids.filter { $0 != failingID }.map { cluster.replicas[$0]! }
            let successor = try await waitForLeader(among: others)
            #expect(successor.configuration.id != failingID)
            let applied = try await proposeOnLeader(command(2_000), among: others)
            #expect(applied.index > (status?.commitIndex ?? 0))
            try await cluster.shutdown()
        } catch {
            try? await cluster.shutdown()
            throw error
        }
    }

    @Test func aSnapshotTheStateMachineRefusesStopsTheRestart() async throws {
        let cluster = try ReplicaSnapshotTests.makeCluster()
        try await cluster.start()
        defer { try? FileManager.default.removeItem(atPath: cluster.root) }
        do {
            for number in 0..<30 { _ = try await proposeOnLeader(ReplicaSnapshotTests.bigCommand(number), among: Array(cluster.replicas.values)) }
            let id = cluster.ids[0]
            try await eventually("replica \(id) took a snapshot") {
                (await cluster.replicas[id]!.status()?.snapshotsTaken ?? 0) >= 1
            }
            let snapshotIndex = await cluster.replicas[id]!.status()!.snapshotIndex
            try await cluster.stop(id)
            cluster.refusingRestores.insert(id)
            do {
                try await cluster.restart(id)
                Issue.record("a replica whose snapshot does not restore started")
            } catch let error as ReplicaError {
                guard case .snapshotNotRestored(let index, let reason) = error else {
                    Issue.record("start failed otherwise: \(error)")
                    throw error
                }
                #expect(index == snapshotIndex)
                #expect(reason.contains("RestoreRefused"), "\(reason)")
            }
            #expect(cluster.replicas[id] == nil)
            try await cluster.shutdown()
        } catch {
            try? await cluster.shutdown()
            throw error
        }
    }

    @Test func aReceivedSnapshotTheStateMachineRefusesStopsTheFollowerForGood() async throws {
        let cluster = try ReplicaSnapshotTests.makeCluster()
        try await cluster.start()
        defer { try? FileManager.default.removeItem(atPath: cluster.root) }
        do {
            for number in 0..<5 { _ = try await proposeOnLeader(ReplicaSnapshotTests.bigCommand(number), among: Array(cluster.replicas.values)) }
            let leading = try await cluster.agreedLeader()
            let laggingID = cluster.ids.first { $0 != leading.configuration.id }!
            try await eventually("the follower applied 5 commands") { cluster.applied[laggingID]!.all.count == 5 }
            try await cluster.stop(laggingID)
            for number in 5..<120 {
                _ = try await proposeOnLeader(ReplicaSnapshotTests.bigCommand(number), among: Array(cluster.replicas.values))
            }

            // Its own log holds no snapshot, so it starts; the leader's snapshot then arrives.
            cluster.refusingRestores.insert(laggingID)
            try await cluster.restart(laggingID)
            let lagging = cluster.replicas[laggingID]!
            let failure = await Self.firstFailure(of: lagging)
            guard case .snapshotNotRestored(let index, _) = failure else {
                Issue.record("the failure reported: \(String(describing: failure))")
                throw CancellationError()
            }
            #expect(index > 5)
            // What it applied before (entries the leader still had) is a prefix of the log; the
            // refused snapshot changed nothing, and nothing is applied after the stop.
            let expected = (0..<120).map(ReplicaSnapshotTests.bigCommand)
            let appliedAtFailure = cluster.applied[laggingID]!.all
            #expect(appliedAtFailure.count < 120 && appliedAtFailure == Array(expected.prefix(appliedAtFailure.count)),
                    "applied \(appliedAtFailure.count) commands")
            #expect(cluster.applied[laggingID]!.restores.isEmpty)
            try await Task.sleep(for: .milliseconds(300))
            #expect(cluster.applied[laggingID]!.all == appliedAtFailure, "applied after it stopped")
            #expect(await lagging.status()?.failure == failure)

            // The snapshot was made durable before it was restored: a restart meets it again.
            try await cluster.stop(laggingID)
            do {
                try await cluster.restart(laggingID)
                Issue.record("the follower restarted over the snapshot it cannot restore")
            } catch let error as ReplicaError {
                guard case .snapshotNotRestored(let again, _) = error else {
                    Issue.record("restart failed otherwise: \(error)")
                    throw error
                }
                #expect(again == index)
            }
            try await cluster.shutdown()
        } catch {
            try? await cluster.shutdown()
            throw error
        }
    }
}
