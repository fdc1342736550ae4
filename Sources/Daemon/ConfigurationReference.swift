/// Every setting `flotillad` reads, with its meaning and the value it has when nothing sets it,
/// for `flotillad --help` and the sample configuration. The defaults are read off a default
/// `DaemonConfiguration` (`value(of:)`), not written twice; ConfigurationTests checks that each
/// key here is accepted by `set` and that `set(key, value(of: key))` changes nothing.
extension DaemonConfiguration {
    public struct SettingDescription: Sendable, Equatable {
        public let key: String
        public let meaning: String
    }

    public static let settings: [SettingDescription] = [
        .init(key: "public_ip", meaning: "IPv4 address peers reach this machine at (required)"),
        .init(key: "voters", meaning: "founding voters' IPs, comma separated (3 or 5; empty: this one alone)"),
        .init(key: "seeds", meaning: "gossip seeds, ip or ip:port (empty: the voters)"),
        .init(key: "metadata", meaning: "this machine's metadata, key=value pairs, comma separated"),
        .init(key: "machine_id_path", meaning: "file holding this machine's ID"),
        .init(key: "data_dir", meaning: "Raft log, snapshots and lease ledger"),
        .init(key: "units_directory", meaning: "where unit files are written for systemd"),
        .init(key: "api_socket", meaning: "the API's unix socket (empty: none)"),
        .init(key: "api_listen", meaning: "an extra TCP listener for the API, host:port (empty: none)"),
        .init(key: "api_tls_cert", meaning: "PEM certificate chain for api_listen (with api_tls_key: HTTPS)"),
        .init(key: "api_tls_key", meaning: "PEM private key for api_listen"),
        .init(key: "api_insecure_plaintext", meaning: "let api_listen serve plain HTTP (anyone reaching it controls the cluster)"),
        .init(key: "ca_file", meaning: "peers' mutual TLS: the cluster's CA certificate, PEM (with cert_file, key_file)"),
        .init(key: "cert_file", meaning: "this machine's certificate, PEM (flotillactl tls cert create)"),
        .init(key: "key_file", meaning: "this machine's private key, PEM"),
        .init(key: "peer_insecure_plaintext", meaning: "Raft and the peer API in plain TCP: anyone on the network can forge Raft messages"),
        .init(key: "gossip_keyring_file", meaning: "gossip encryption keys, base64, one per line (flotillactl keyring generate)"),
        .init(key: "gossip_insecure_plaintext", meaning: "gossip unencrypted: anyone on the network can forge membership"),
        .init(key: "gossip_port", meaning: "membership, UDP and TCP"),
        .init(key: "peer_port", meaning: "peer HTTP: agents' schedule, forwarded requests"),
        .init(key: "raft_port", meaning: "Raft between voters"),
        .init(key: "agent_ttl", meaning: "the lease: a machine cut off from the voters this long stops its units"),
        .init(key: "agent_renew_interval", meaning: "lease renewal period (at most a third of agent_ttl)"),
        .init(key: "agent_stop_allowance", meaning: "time this machine's units may take to stop once the lease ran out"),
        .init(key: "engine_reconcile_interval", meaning: "the leader's scheduling round when nothing triggers one"),
        .init(key: "agent_reconcile_interval", meaning: "the agent's reconcile when nothing changed"),
        .init(key: "token_limit", meaning: "entries per API page"),
        .init(key: "systemd_user", meaning: "drive the user manager instead of the system one"),
        .init(key: "gossip_profile", meaning: "lan (memberlist's defaults) or fast-lan (small clusters)"),
        .init(key: "log_level", meaning: "trace, debug, info, notice, warning, error or critical"),
        .init(key: "raft_tick", meaning: "Raft's tick"),
        .init(key: "raft_election_ticks", meaning: "election timeout, in ticks"),
        .init(key: "raft_snapshot_entries", meaning: "snapshot and compact the Raft log every this many entries"),
        .init(key: "max_units", meaning: "quota: units and templates the cluster holds (past it: HTTP 507)"),
        .init(key: "max_unit_file_bytes", meaning: "quota: the largest unit file accepted"),
        .init(key: "max_registry_bytes", meaning: "quota: all unit files' bytes, names included"),
        .init(key: "data_dir_reserve_bytes", meaning: "free space below which this voter raises the NOSPACE alarm"),
        .init(key: "disk_stall_limit", meaning: "a Raft loop held this long by a write or fsync that does not return stops the daemon (status 74)"),
    ]

    /// The setting's value in this configuration, written as the configuration file takes it.
    public func value(of key: String) -> String? {
        func duration(_ milliseconds: Int64) -> String {
            milliseconds % 1_000 == 0 ? "\(milliseconds / 1_000)s" : "\(milliseconds)ms"
        }
        switch key {
        case "public_ip": return publicIP
        case "voters": return voters.joined(separator: ",")
        case "seeds": return seeds.joined(separator: ",")
        case "metadata": return metadata.keys.sorted().map { "\($0)=\(metadata[$0]!)" }.joined(separator: ",")
        case "machine_id_path": return machineIDPath
        case "data_dir": return dataDirectory
        case "units_directory": return unitsDirectory
        case "api_socket": return apiSocketPath
        case "api_listen": return apiListen
        case "api_tls_cert": return apiTLSCertificatePath
        case "api_tls_key": return apiTLSKeyPath
        case "api_insecure_plaintext": return String(apiInsecurePlaintext)
        case "ca_file": return caFilePath
        case "cert_file": return certificateFilePath
        case "key_file": return keyFilePath
        case "peer_insecure_plaintext": return String(peerInsecurePlaintext)
        case "gossip_keyring_file": return gossipKeyringPath
        case "gossip_insecure_plaintext": return String(gossipInsecurePlaintext)
        case "gossip_port": return String(gossipPort)
        case "peer_port": return String(peerPort)
        case "raft_port": return String(raftPort)
        case "agent_ttl": return duration(agentTTLMilliseconds)
        case "agent_renew_interval": return duration(agentRenewIntervalMilliseconds)
        case "agent_stop_allowance": return duration(agentStopAllowanceMilliseconds)
        case "engine_reconcile_interval": return duration(engineReconcileIntervalMilliseconds)
        case "agent_reconcile_interval": return duration(agentReconcileIntervalMilliseconds)
        case "token_limit": return String(tokenLimit)
        case "systemd_user": return String(systemdUser)
        case "gossip_profile": return gossipProfile
        case "log_level": return logLevel
        case "raft_tick": return duration(raftTickMilliseconds)
        case "raft_election_ticks": return String(raftElectionTicks)
        case "raft_snapshot_entries": return String(raftSnapshotEntries)
        case "max_units": return String(unitsMax)
        case "max_unit_file_bytes": return Self.formatBytes(Int64(unitFileBytesMax))
        case "max_registry_bytes": return Self.formatBytes(Int64(registryBytesMax))
        case "data_dir_reserve_bytes": return Self.formatBytes(dataDirectoryReserveBytes)
        case "disk_stall_limit": return duration(diskStallLimitMilliseconds)
        default: return nil
        }
    }

    /// `bytes` in the largest binary unit that writes it exactly (what `parseBytes` reads back).
    static func formatBytes(_ bytes: Int64) -> String {
        for (suffix, shift) in [("GiB", 30), ("MiB", 20), ("KiB", 10)] where bytes > 0 && bytes % (Int64(1) << shift) == 0 {
            return "\(bytes >> shift)\(suffix)"
        }
        return String(bytes)
    }

    /// The settings list of `flotillad --help`: each key with its default, its meaning below.
    /// Lines stay under 80 columns, where swift-argument-parser would wrap them.
    public static func settingsHelp() -> String {
        let defaults = DaemonConfiguration()
        return settings.map { setting in
            let value = defaults.value(of: setting.key) ?? ""
            return "  \(setting.key) (default: \(value.isEmpty ? "empty" : value))\n      \(setting.meaning)"
        }.joined(separator: "\n")
    }
}
