import Membership
import Registry
import Scheduling

/// One machine as the daemon sees it: membership's record plus the peer ports it advertises.
struct MachineView: Hashable, Sendable {
    var id: MachineID
    var publicIP: String
    var peerPort: Int
    /// 0 when the machine does not advertise one (then it cannot become a voter).
    var raftPort: Int = 0
    var role: MemberRole
    var status: MemberStatus
    /// fleet metadata from the machine's own configuration (reserved `flotilla.` keys removed).
    var metadata: [String: String]
}

/// Reserved member-metadata keys: how a machine tells peers where its peer API listens.
enum MemberKeys {
    static let peerPort = "flotilla.peer_port"
    static let raftPort = "flotilla.raft_port"
    static let prefix = "flotilla."
}

/// Decides which machines the scheduler may use (pure; the leader calls it with membership's
/// current view and the time).
///
/// A machine is live while membership sees it alive or suspect; once it is dead it stays live
/// for `agentTTLMilliseconds` more, measured from when this tracker first saw it dead, and only
/// then do its units move. A machine that left (its flotillad said goodbye because the machine
/// is shutting down) is not live at all: its units are being stopped by its own systemd, and
/// waiting would only leave them down longer. The grace is measured by the leader, so a new leader
/// starts the clock afresh: a leader change can delay a move by at most one TTL, never cause one.
struct MachineLiveness: Sendable {
    let agentTTLMilliseconds: Int64
    private(set) var downSinceMilliseconds: [MachineID: Int64] = [:]

    init(agentTTLMilliseconds: Int64) {
        precondition(agentTTLMilliseconds >= 0, "agentTTLMilliseconds must not be negative")
        self.agentTTLMilliseconds = agentTTLMilliseconds
    }

    /// Records `machines` as seen at `nowMilliseconds`; returns the ids the scheduler may use.
    mutating func liveIDs(machines: [MachineView], nowMilliseconds: Int64) -> [MachineID] {
        var live: [MachineID] = []
        var stillDown: [MachineID: Int64] = [:]
        for machine in machines {
            if machine.status.isActive {
                live.append(machine.id)
                continue
            }
            if machine.status == .left { continue }
            let since = downSinceMilliseconds[machine.id] ?? nowMilliseconds
            stillDown[machine.id] = since
            if nowMilliseconds - since < agentTTLMilliseconds { live.append(machine.id) }
        }
        downSinceMilliseconds = stillDown
        return live.sorted()
    }

    /// The earliest time a down machine's grace ends (for the leader to schedule a round then).
    var nextExpiryMilliseconds: Int64? {
        downSinceMilliseconds.values.min().map { $0 + agentTTLMilliseconds }
    }
}

extension MachineView {
    /// The scheduler's view: metadata set through the API (PATCH /machines) replaces the
    /// machine's configured metadata; drain comes from the registry.
    func liveMachine(in registry: RegistryState) -> LiveMachine {
        let record = registry.machines[id]
        let metadata: [String: String]
        if let record, !record.metadata.isEmpty { metadata = record.metadataByKey } else { metadata = self.metadata }
        return LiveMachine(id: id, metadata: metadata, isDrained: record?.isDrained ?? false)
    }

    init?(member: Member) {
        guard let id = try? MachineID(member.id.rawValue) else { return nil }
        var metadata: [String: String] = [:]
        var peerPort = 0
        var raftPort = 0
        for entry in member.metadata.entries {
            if entry.key == MemberKeys.peerPort { peerPort = Int(entry.value) ?? 0 }
            if entry.key == MemberKeys.raftPort { raftPort = Int(entry.value) ?? 0 }
            if !entry.key.hasPrefix(MemberKeys.prefix) { metadata[entry.key] = entry.value }
        }
        guard peerPort > 0 else { return nil }
        self.init(id: id, publicIP: member.address.host, peerPort: peerPort, raftPort: raftPort, role: member.role,
                  status: member.status, metadata: metadata)
    }
}
