import Membership
import Transport

extension Node {
    /// Prometheus text exposition (format 0.0.4) of this peer's state.
    func metricsText() async -> String {
        var lines: [String] = []
        func metric(_ name: String, _ type: String, _ help: String, _ samples: [(labels: String, value: String)]) {
            lines.append("# HELP \(name) \(help)")
            lines.append("# TYPE \(name) \(type)")
            for sample in samples { lines.append("\(name)\(sample.labels.isEmpty ? "" : "{\(sample.labels)}") \(sample.value)") }
        }
        let leadership = await leadership()
        if let status = leadership.status {
            metric("flotilla_raft_term", "gauge", "Current Raft term.", [("", "\(status.term)")])
            metric("flotilla_raft_commit_index", "gauge", "Raft commit index.", [("", "\(status.commitIndex)")])
            metric("flotilla_raft_applied_index", "gauge", "Raft applied index.", [("", "\(status.appliedIndex)")])
            metric("flotilla_raft_is_leader", "gauge", "1 on the leader.", [("", leadership.isLeader ? "1" : "0")])
            metric("flotilla_raft_storage_syncs_total", "counter", "fdatasync calls of the write-ahead log.", [("", "\(status.storageSyncs)")])
            metric("flotilla_raft_malformed_messages_total", "counter", "Raft messages refused as malformed (a term or index past 2^62, entries out of order, a snapshot chunk outside its snapshot).",
                   [("", "\(status.malformedMessagesDropped)")])
        }
        var byStatus: [String: Int] = [:]
        for view in machines { byStatus[view.status.description, default: 0] += 1 }
        metric("flotilla_members", "gauge", "Members by membership state.",
               MemberStatus.allCases.map { ("state=\"\($0.description)\"", "\(byStatus[$0.description] ?? 0)") })
        if leadership.isLeader {
            var byActive: [String: Int] = [:]
            for state in stateTable.states(machineID: nil, unitName: nil) { byActive[state.systemdActiveState, default: 0] += 1 }
            metric("flotilla_unit_states", "gauge", "Unit states reported by agents, by systemd active state.",
                   byActive.keys.sorted().map { ("active_state=\"\($0)\"", "\(byActive[$0]!)") })
        }
        let gossip = await membership.counters()
        metric("flotilla_gossip_dropped_total", "counter",
               "Gossip packets and push-pull frames dropped unread: no key of the keyring opened them, or they did not decode.",
               [("reason=\"unauthenticated_datagram\"", "\(gossip.datagramsDroppedUnauthenticated)"),
                ("reason=\"unauthenticated_stream\"", "\(gossip.streamFramesDroppedUnauthenticated)"),
                ("reason=\"undecodable\"", "\(gossip.garbageDropped)")])
        let raft = await voter?.replica.transport.counters() ?? TransportCounters()
        metric("flotilla_connections_refused_total", "counter",
               "Inbound peer connections refused or closed before they carried anything: over the listener's limit, over one address's share, a TLS handshake not finished in time or pushed out by a newcomer while the listener was full, silent too long.",
               [("listener=\"raft\",reason=\"over_limit\"", "\(raft.connectionsRefusedOverLimit)"),
                ("listener=\"raft\",reason=\"per_address\"", "\(raft.connectionsRefusedPerAddress)"),
                ("listener=\"raft\",reason=\"evicted_unauthenticated\"", "\(raft.connectionsEvictedUnauthenticated)"),
                ("listener=\"raft\",reason=\"handshake_timeout\"", "\(raft.handshakeTimeouts)"),
                ("listener=\"raft\",reason=\"idle\"", "\(raft.idleConnectionsClosed)"),
                ("listener=\"gossip\",reason=\"over_limit\"", "\(gossip.streamsRefusedOverLimit)"),
                ("listener=\"gossip\",reason=\"per_address\"", "\(gossip.streamsRefusedPerAddress)"),
                ("listener=\"gossip\",reason=\"evicted_unauthenticated\"", "\(gossip.streamsEvictedAwaitingRequest)"),
                ("listener=\"gossip\",reason=\"timeout\"", "\(gossip.streamsTimedOut)"),
                ("listener=\"peer_api\",reason=\"evicted_unauthenticated\"",
                 "\(peerServer.withLock { $0 }?.connectionsEvictedUnauthenticated ?? 0)")])
        let counters = metrics.withLock { $0 }
        metric("flotilla_scheduling_rounds_total", "counter", "Scheduling rounds run while leading.", [("", "\(counters.schedulingRounds)")])
        metric("flotilla_scheduling_commands_total", "counter", "Registry commands proposed by scheduling.", [("", "\(counters.schedulingCommands)")])
        metric("flotilla_scheduling_last_round_seconds", "gauge", "Duration of the last scheduling round.",
               [("", "\(Double(counters.lastSchedulingMicroseconds) / 1_000_000)")])
        metric("flotilla_forwarded_requests_total", "counter", "API requests forwarded to the leader.", [("", "\(counters.forwardedRequests)")])
        metric("flotilla_forward_failures_total", "counter", "Forwarded API requests that failed.", [("", "\(counters.forwardFailures)")])
        metric("flotilla_peer_api_refused_total", "counter",
               "Connections and requests the peer port refused: TLS handshakes (no certificate of the cluster's CA), callers a certificate may not speak for (403), malformed caller headers (400).",
               [("reason=\"handshake\"", "\(counters.peerRequestsRefused[0] ?? 0)"),
                ("reason=\"forbidden\"", "\(counters.peerRequestsRefused[403] ?? 0)"),
                ("reason=\"bad_request\"", "\(counters.peerRequestsRefused[400] ?? 0)")])
        metric("flotilla_api_refused_total", "counter",
               "User API requests refused for their ACL token: none given (401), or one that does not allow the request (403).",
               [("reason=\"unauthenticated\"", "\(counters.aclRefusals[401] ?? 0)"),
                ("reason=\"forbidden\"", "\(counters.aclRefusals[403] ?? 0)")])
        metric("flotilla_writes_refused_total", "counter",
               "User writes this leader refused with 507: under a NOSPACE alarm, or past max_units, max_unit_file_bytes or max_registry_bytes.",
               [("reason=\"nospace\"", "\(counters.writesRefusedNoSpace)"), ("reason=\"quota\"", "\(counters.writesRefusedQuota)")])
        if let registry {
            let state = registry.current
            let quota = WriteQuota(configuration)
            metric("flotilla_nospace_alarm", "gauge", "1 for each voter whose data directory is short of free space (raised alarms only).",
                   state.noSpaceAlarms.sorted().map { ("machine=\"\($0.rawValue)\"", "1") })
            metric("flotilla_registry_units", "gauge", "Units and templates in this voter's registry.", [("", "\(state.units.count + state.templates.count)")])
            metric("flotilla_registry_units_max", "gauge", "This machine's max_units quota.", [("", "\(quota.unitsMax)")])
            metric("flotilla_registry_unit_file_bytes", "gauge", "Bytes of the unit files in this voter's registry, names included.", [("", "\(state.unitFileBytes)")])
            metric("flotilla_registry_unit_file_bytes_max", "gauge", "This machine's max_registry_bytes quota.", [("", "\(quota.registryBytesMax)")])
            if let free = NoSpaceAlarmState.freeBytes(at: configuration.dataDirectory) {
                metric("flotilla_data_directory_free_bytes", "gauge", "Free bytes on the data directory's file system.", [("", "\(free)")])
            }
            metric("flotilla_data_directory_reserve_bytes", "gauge", "data_dir_reserve_bytes: below it this voter raises NOSPACE.",
                   [("", "\(configuration.dataDirectoryReserveBytes)")])
        }
        if let agent {
            let agentCounters = await agent.metrics
            metric("flotilla_agent_actions_total", "counter", "Unit actions run by this machine's agent.", [("", "\(agentCounters.actions)")])
            metric("flotilla_agent_action_failures_total", "counter", "Unit actions that failed (bus errors included).", [("", "\(agentCounters.actionFailures)")])
            metric("flotilla_agent_lease_lapses_total", "counter", "Times this machine's lease lapsed (no majority of the voters granted it) and its units were stopped.", [("", "\(agentCounters.leaseLapses)")])
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
