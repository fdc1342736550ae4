import FleetAPI
import Foundation
import Membership
import Raft
import Registry
import UnitFile
import Wire

/// The seed inputs of each harness, made with the real encoders so that the fuzzer starts from
/// inputs that get past the first checks (`flotilla-fuzz seed DIR` writes them; the committed
/// corpora under Contrib/fuzz/corpus began as these).
extension FuzzHarness {
    public var seeds: [[UInt8]] {
        switch self {
        case .membershipCodec:
            return Self.membershipMessages.map(MembershipCodec.encode)
        case .membershipCore:
            return [[1] + Self.membershipMessages.map(MembershipCodec.encode).joined(separator: [0xFF, 0xFE])]
        case .wireFrames:
            return Self.raftMessages.map { Frame.encode($0) } + Self.raftMessages.map { [FrameKind.message.rawValue] + $0.encodedBody }
                + [[FrameKind.entry.rawValue] + Entry(term: 2, index: 3, payload: .command(data: [1, 2], stamp: ClientStamp(clientID: 1, sequence: 2))).encodedBody]
        case .raftCore:
            return (0..<4).map { role in [UInt8(role | 4)] + Self.raftMessages.map(\.encodedBody).joined(separator: [0xFF, 0xFE]) }
        case .registryCommand:
            return Self.registryCommands.map { $0.encoded() }
        case .registrySnapshot:
            return [RegistryHarnesses.populated.snapshot(), RegistryState().snapshot()]
        case .unitFile:
            return Self.unitFiles.map { Array($0.utf8) }
        case .fleetJSON:
            let put = #"{"desiredState":"launched","options":[{"section":"Service","name":"ExecStart","value":"/bin/sleep 1"},{"section":"X-Fleet","name":"Conflicts","value":"web@*.service"}]}"#
            return [[0] + Array(put.utf8),
                    [1] + Array(#"[{"op":"add","path":"/m1/metadata/disk","value":"ssd"}]"#.utf8),
                    [2] + Array(#"{"machineID":"m1","isResync":true,"states":[],"gone":["a.service"]}"#.utf8),
                    [3] + Array(#"{"machineID":"m1","epoch":3}"#.utf8),
                    [5] + Array(#"{"name":"ops","policies":["read"]}"#.utf8)]
        case .httpRequest:
            let put = #"{"desiredState":"launched","options":[{"section":"Service","name":"ExecStart","value":"/bin/true"}]}"#
            let patch = #"[{"op":"add","path":"/m1/metadata/a","value":"b"}]"#
            return [
                "GET /fleet/v1/units HTTP/1.1\r\nHost: x\r\n\r\n",
                "PUT /fleet/v1/units/web%40a.service HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: \(put.utf8.count)\r\n\r\n\(put)",
                "DELETE /fleet/v1/units/web.service HTTP/1.1\r\nHost: x\r\n\r\n",
                "PATCH /fleet/v1/machines HTTP/1.1\r\nHost: x\r\nContent-Length: \(patch.utf8.count)\r\n\r\n\(patch)",
                "GET /flotilla/v1/watch?afterIndex=3&waitMs=0 HTTP/1.1\r\nHost: x\r\n\r\n",
                "GET /fleet/v1/state?machineID=m1&unitName=web.service HTTP/1.1\r\nHost: x\r\n\r\n",
            ].map { Array($0.utf8) }
        case .walRecovery:
            // Offsets into the template segment, then the bytes that land there: none (the log
            // as written), a flipped byte, a torn tail, garbage past the end.
            let count = StorageHarness.template.bytes.count
            return [[0, 0], [0, 40, 0xFF], [UInt8(truncatingIfNeeded: (count - 3) >> 8), UInt8(truncatingIfNeeded: count - 3), 0, 0, 0],
                    [UInt8(truncatingIfNeeded: count >> 8), UInt8(truncatingIfNeeded: count), 1, 2, 3, 4, 5, 6, 7, 8]]
        }
    }

    static var membershipMessages: [MembershipMessage] {
        let member = MembershipHarnesses.member
        return [
            MembershipMessage(.ping(Ping(sequenceNumber: 7, targetID: MemberID("m1"))), gossip: [.alive(member(5))]),
            MembershipMessage(.gossip, gossip: [.suspect(MemberID("m1"), incarnation: 3, from: MemberID("m2")),
                                                 .dead(MemberID("m3"), incarnation: 1, from: MemberID("m2"))]),
            MembershipMessage(.pushPull(PushPull(kind: .request, members: [member(2), member(3)]))),
        ]
    }

    static var raftMessages: [Message] {
        let (n1, n2) = (NodeID(1), NodeID(2))
        let request = VoteRequest(lastLogIndex: 1, lastLogTerm: 1, isLeadershipTransfer: false)
        return [
            Message(from: n2, to: n1, term: 2, payload: .preVoteRequest(request)),
            Message(from: n2, to: n1, term: 2, payload: .voteRequest(request)),
            Message(from: n2, to: n1, term: 3, payload: .appendEntries(AppendEntries(
                prevLogIndex: 1, prevLogTerm: 1, entries: [Entry(term: 3, index: 2, payload: .command(data: [7], stamp: nil))], leaderCommitIndex: 2))),
            Message(from: n2, to: n1, term: 3, payload: .heartbeat(Heartbeat(commitIndex: 2, readRound: 1))),
            Message(from: n2, to: n1, term: 3, payload: .appendEntriesResponse(.accepted(matchIndex: 2))),
            Message(from: n2, to: n1, term: 4, payload: .installSnapshot(InstallSnapshotChunk(
                metadata: SnapshotMetadata(index: 5, term: 4, membership: Membership(voters: RaftHarnesses.voters)), totalBytes: 3, offset: 0, data: [1, 2, 3]))),
            Message(from: n2, to: n1, term: 4, payload: .timeoutNow),
        ]
    }

    static var registryCommands: [RegistryCommand] {
        guard let name = try? UnitName("new.service"), let file = try? UnitFile(parsing: "[Service]\nExecStart=/bin/true\n"),
              let machine = try? MachineID("m2"), let web = try? UnitName("web.service") else { return [] }
        return [
            RegistryCommand(.submitUnits([UnitSubmission(name: name, unitFile: file, targetState: .launched)]), stamp: ClientStamp(clientID: 1, sequence: 1)),
            RegistryCommand(.setTargetState([web], .inactive)),
            RegistryCommand(.assign([Assignment(unit: web, machine: machine)])),
            RegistryCommand(.setMachineMetadata(machine, [MetadataEntry(key: "zone", value: "a")])),
            RegistryCommand(.revokeLease(machine, epoch: 0)),
            RegistryCommand(.setNoSpaceAlarm(machine, raised: true)),
            RegistryCommand(.destroyUnits([web])),
        ]
    }

    static let unitFiles = [
        "[Unit]\nDescription=web\nAfter=docker.service\n\n[Service]\nExecStart=/usr/bin/docker run --rm --name web busybox \\\n  httpd -f\nRestart=always\n\n[X-Fleet]\nConflicts=web@*.service\nMachineMetadata=disk=ssd\n",
        "# comment\n[Service]\nExecStart=/bin/sleep 1000\nEnvironment=\"A=b c\"\n[X-Fleet]\nGlobal=true\n",
    ]
}
