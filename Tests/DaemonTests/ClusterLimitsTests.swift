@testable import Daemon
import TestSupport
import FleetAPI
import Raft
import Registry
@testable import Storage
import Testing
import UnitFile
import Wire

/// The byte bounds along a write's path hold the largest thing the step before accepts, measured
/// with the real encoders (issue 14: a 3 MiB entry fit a 4 MiB frame but not a 2 MiB WAL record,
/// and a scheduling round of 4,096 long names made an entry Raft refused, every round).
@Suite(.onBackgroundThreads) struct ClusterLimitsTests {
    let limits = ClusterLimits.standard

    static func longestUnitName(_ index: Int = 0) throws -> UnitName {
        let suffix = ".service"
        let tag = String(index)
        return try UnitName(String(repeating: "u", count: UnitName.lengthMax - suffix.utf8.count - tag.utf8.count) + tag + suffix)
    }

    static func longestMachine() throws -> MachineID {
        try MachineID(String(repeating: "m", count: MachineID.lengthMax))
    }

    /// A relayed caller names a machine: the header must carry every machine ID the registry
    /// accepts (it carried 64 bytes of the registry's 128).
    @Test func theCallerHeaderCarriesEveryValidMachineID() throws {
        #expect(APICaller.machineIDLengthMax == MachineID.lengthMax)
        let longest = String(repeating: "a", count: MachineID.lengthMax)
        _ = try MachineID(longest)
        #expect(APICaller(headerValue: "peer \(longest)")?.machineID == longest)
        #expect(APICaller(headerValue: "peer \(longest)a") == nil)
    }

    @Test func theLimitsTheDaemonUsesAreAcceptedByEachLayer() throws {
        let raft = try limits.raftConfiguration(electionTimeoutTicks: 10)
        #expect(raft.entryBytesMax == limits.entryBytesMax)
        #expect(raft.snapshotChunkBytesMax == limits.snapshotChunkBytesMax)
        // ReplicaConfiguration checks the WAL record against the entry; it must accept these.
        #expect(limits.walRecordBytesMax > limits.entryBytesMax + 1024)
        #expect(limits.scheduler.batchCountMax == limits.schedulerBatchCountMax)
    }

    @Test func theLargestSubmissionFitsOneEntry() throws {
        // A unit file at the registry's size limit, under the longest name, stamped and hashed.
        let line = "ExecStart=/bin/sh -c 'echo " + String(repeating: "x", count: 60) + "'\n"
        var text = "[Service]\n"
        while text.utf8.count + line.utf8.count <= limits.unitFileBytesMax - 64 { text += line }
        let file = try UnitFile(parsing: text)
        let submission = UnitSubmission(name: try Self.longestUnitName(), unitFile: file, targetState: .launched)
        let size = try #require(submission.file).count
        #expect(size > limits.unitFileBytesMax - 4096 && size <= limits.unitFileBytesMax)
        let command = RegistryCommand(.submitUnits([submission]), stamp: Registry.ClientStamp(clientID: .max, sequence: .max))
        #expect(command.encoded().count <= limits.entryBytesMax)
    }

    @Test func theSchedulersLargestBatchFitsOneEntryAndOneMoreWouldNot() throws {
        let machine = try Self.longestMachine()
        let count = limits.schedulerBatchCountMax
        let assignments = try (0...count).map { Assignment(unit: try Self.longestUnitName($0 % 10), machine: machine) }
        let stamp = Registry.ClientStamp(clientID: .max, sequence: .max)
        let full = RegistryCommand(.assign(Array(assignments.prefix(count))), stamp: stamp).encoded()
        #expect(full.count <= limits.entryBytesMax)
        // The count is derived, not a guess: one element more would be refused by Raft.
        #expect(RegistryCommand(.assign(assignments), stamp: stamp).encoded().count > limits.entryBytesMax)
        let names = Array(assignments.prefix(count).map(\.unit))
        #expect(RegistryCommand(.unassign(names), stamp: stamp).encoded().count <= limits.entryBytesMax)
    }

    @Test func everyAppendEntriesRaftCanSendFitsOneTransportFrame() throws {
        let stamp = Raft.ClientStamp(clientID: .max, sequence: .max)
        let high = UInt64(1) << 62
        // One maximal entry (always sent alone, whatever the batch limit).
        let largest = Entry(term: high, index: high, payload: .command(data: [UInt8](repeating: 0xFF, count: limits.entryBytesMax), stamp: stamp))
        // A batch of the smallest stamped entries: on the wire each costs more than Raft counts.
        let smallCount = limits.appendEntriesBatchBytesMax / Entry(term: 1, index: 1, payload: .command(data: [], stamp: stamp)).sizeBytes
        let small = (0..<UInt64(smallCount)).map { Entry(term: high, index: high + $0, payload: .command(data: [], stamp: stamp)) }
        // The batch limit filled with entries just under the largest.
        let halfData = [UInt8](repeating: 0xAB, count: limits.appendEntriesBatchBytesMax / 2 - Entry.overheadBytes)
        let halves = (0..<UInt64(2)).map { Entry(term: high, index: high + $0, payload: .command(data: halfData, stamp: stamp)) }
        for entries in [[largest], small, halves] {
            #expect(entries.count == 1 || entries.reduce(0) { $0 + $1.sizeBytes } <= limits.appendEntriesBatchBytesMax)
            let message = Message(from: NodeID(.max), to: NodeID(.max - 1), term: high, payload: .appendEntries(
                AppendEntries(prevLogIndex: high, prevLogTerm: high, entries: entries, leaderCommitIndex: high)))
            #expect(message.encodedBody.count <= limits.transportFrameBytesMax, "\(entries.count) entries")
            // And what the follower then writes is one WAL record's worth per entry.
            #expect(entries.allSatisfy { RecordFormat.entriesRecordBytes([$0]) <= limits.walRecordBytesMax })
        }
        let chunk = Message(from: NodeID(.max), to: NodeID(.max - 1), term: high, payload: .installSnapshot(InstallSnapshotChunk(
            metadata: SnapshotMetadata(index: high, term: high, membership: Membership(voters: (1...9).map { NodeID($0) })),
            totalBytes: 1 << 30, offset: (1 << 30) - 2 * limits.snapshotChunkBytesMax,
            data: [UInt8](repeating: 1, count: limits.snapshotChunkBytesMax))))
        #expect(chunk.encodedBody.count <= limits.transportFrameBytesMax)
    }

    /// fleet's client sends a unit as Go's encoding/json writes it: every option repeats its
    /// section, and `<`, `>`, `&` are six bytes each. A file of the shortest lines grows most.
    @Test func theLargestUnitFileFitsOneHTTPBodyAsFleetsClientSendsIt() throws {
        for line in ["A=\n", "A=&\n"] {
            var text = "[X-Fleet]\nConflicts=a.service\n[Service]\n"
            while text.utf8.count + line.utf8.count <= limits.unitFileBytesMax - 64 { text += line }
            let file = try UnitFile(parsing: text)
            #expect(file.serialized().utf8.count <= limits.unitFileBytesMax)
            var body = #"{"name":"\#(try Self.longestUnitName().rawValue)","options":["#
            for (position, option) in file.fleetOptions.enumerated() {
                if position > 0 { body += "," }
                body += #"{"name":"\#(Self.goEscaped(option.name))","section":"\#(Self.goEscaped(option.section))","value":"\#(Self.goEscaped(option.value))"}"#
            }
            body += "]}\n"
            #expect(body.utf8.count > 10 * limits.unitFileBytesMax, "the file of \(line.debugDescription) lines should be a worst case")
            #expect(body.utf8.count <= limits.httpRequestBodyBytesMax, "\(line.debugDescription): \(body.utf8.count) bytes")
        }
    }

    static func goEscaped(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "<": out += "\\u003c"
            case ">": out += "\\u003e"
            case "&": out += "\\u0026"
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}
