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

extension MachineView {
    /// The machines the scheduler sees: every machine membership shows and every machine with
    /// units placed on it, whatever membership says. Units leave a machine only through its
    /// lease's revocation (which unplaces them) or their own constraints, never because gossip
    /// lost sight of it: a machine that still renews through the voters keeps what it runs.
    /// New units go only to machines that membership sees alive and that renewed their lease
    /// with this leader lately (`isRenewing`, from the leader's own ledger).
    static func schedulingMachines(state: RegistryState, views: [MachineView], lastKnownMetadata: [MachineID: [String: String]],
                                   isRenewing: (MachineID) -> Bool) -> [LiveMachine] {
        var byID: [MachineID: LiveMachine] = [:]
        for view in views {
            var machine = view.liveMachine(in: state)
            machine.acceptsNewUnits = view.status.isActive && isRenewing(view.id)
            byID[view.id] = machine
        }
        for unit in state.units.values {
            guard let id = unit.machine, byID[id] == nil else { continue }
            let record = state.machines[id]
            let metadata = record.map(\.metadataByKey).flatMap { $0.isEmpty ? nil : $0 } ?? lastKnownMetadata[id] ?? [:]
            byID[id] = LiveMachine(id: id, metadata: metadata, isDrained: record?.isDrained ?? false, acceptsNewUnits: false)
        }
        return byID.keys.sorted().map { byID[$0]! }
    }

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
