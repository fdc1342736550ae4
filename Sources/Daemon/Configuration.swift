import Agent
import Registry

/// Everything a `flotillad` needs to know, resolved once at start from (lowest to highest
/// precedence) defaults, /etc/flotilla/flotilla.conf, `FLOTILLA_*` environment variables and
/// command-line flags. Keys are fleet's where they mean the same (`public_ip`, `metadata`,
/// `agent_ttl`, `engine_reconcile_interval`, `token_limit`, `units_directory`, `systemd_user`);
/// fleet keys that have no meaning here (its etcd settings) are accepted with a warning so a
/// fleet configuration file can be reused as it is.
public struct DaemonConfiguration: Sendable, Equatable {
    public var machineIDPath = "/etc/machine-id"
    /// The address peers use to reach this machine (fleet's `public_ip`). Required: a daemon
    /// that guessed wrong would advertise an address nobody can reach.
    public var publicIP = ""
    /// fleet's `metadata`: `key=value` pairs, comma separated.
    public var metadata: [String: String] = [:]
    public var dataDirectory = "/var/lib/flotilla"
    /// The API's unix socket (fleet's /var/run/fleet.sock). Empty: no unix listener.
    public var apiSocketPath = "/var/run/flotilla.sock"
    /// An extra TCP listener for the API, `host:port`; empty for none (the default, as fleet).
    public var apiListen = ""
    /// PEM files of the certificate chain (the server's certificate first) and its private key:
    /// with both set, the `apiListen` listener serves HTTPS instead of HTTP. Both or neither, and
    /// only with `apiListen` (validated below). They are read when the API starts; the peer port
    /// stays plain HTTP (peers talk to each other on the cluster's own network).
    public var apiTLSCertificatePath = ""
    public var apiTLSKeyPath = ""
    /// Serve `apiListen` as plain HTTP: anyone who reaches it can run any command as root on
    /// every machine (a unit's ExecStart=). Must be asked for; flotillad warns at every start.
    public var apiInsecurePlaintext = false
    /// The gossip keyring file (`GossipKeyring`'s format: one base64 AES-256 key per line, the
    /// first encrypts). Every membership packet is sealed with it; a member without the key can
    /// neither join nor forge a member's state. The same file on every machine, mode 0600.
    public var gossipKeyringPath = "/etc/flotilla/gossip.keyring"
    /// Gossip in plain text instead (anyone who reaches gossip_port can then declare any member
    /// dead). Must be asked for; flotillad warns at every start when it is.
    public var gossipInsecurePlaintext = false
    /// Mutual TLS between peers (Raft and the peer API): the cluster's CA certificate, this
    /// machine's certificate and its key, PEM (`flotillactl tls`). The certificate must name this
    /// machine (its machine ID and public_ip); a peer is served only as what its certificate names.
    /// Without them flotillad refuses to start, unless `peer_insecure_plaintext` asks for plain
    /// TCP (Consul's and Nomad's verify_incoming/verify_outgoing are always on here).
    public var caFilePath = "/etc/flotilla/tls/flotilla-ca.pem"
    public var certificateFilePath = "/etc/flotilla/tls/peer.pem"
    public var keyFilePath = "/etc/flotilla/tls/peer-key.pem"
    /// Raft and the peer API in plain TCP: anyone who reaches raft_port or peer_port can forge
    /// Raft messages or use the peer API. For a trusted test network only.
    public var peerInsecurePlaintext = false
    /// Peer-to-peer ports: gossip (UDP + TCP), peer HTTP (agents follow voters, forwarding), Raft.
    public var gossipPort = 7946
    public var peerPort = 7948
    public var raftPort = 7949
    /// The founding voters' public IPs (3 or 5). Empty: this machine alone forms a cluster.
    public var voters: [String] = []
    /// Gossip seeds (`ip` or `ip:port`); the voters when empty.
    public var seeds: [String] = []
    /// fleet's `agent_ttl`: the lease L. A renewal round that a majority of the voters granted
    /// lets this machine run its units for this long, counted from when the round was sent; a
    /// machine cut off from the quorum stops its units when it runs out (systemd enforces it,
    /// see the Agent documentation's Lease article). fleet's default was 30 s; 2 s here, since
    /// renewals go to every voter and need no leader, so a leader change never lapses a lease.
    public var agentTTLMilliseconds: Int64 = 2_000
    /// How often the agent sends a renewal round to every voter (H; at most a third of the lease).
    public var agentRenewIntervalMilliseconds: Int64 = 500
    /// S: how long this machine's units may take to stop once the lease has run out. The
    /// voters wait for it (and for the lease, Δ and the clock-drift bound) before the leader
    /// moves the units, so it must cover the units' stop time (`docker stop` with `--init`
    /// takes about 0.1 s); a unit that takes longer could still be stopping when it starts elsewhere.
    public var agentStopAllowanceMilliseconds: Int64 = 1_000
    /// fleet's `engine_reconcile_interval`: the period of the leader's scheduling round when
    /// nothing triggers one earlier (changes trigger rounds at once).
    public var engineReconcileIntervalMilliseconds: Int64 = 2_000
    /// The agent's periodic reconcile when nothing changed (systemd events and schedule changes
    /// trigger it at once).
    public var agentReconcileIntervalMilliseconds: Int64 = 5_000
    /// fleet's `token_limit`: entries per API page. fleet's default was 100; Flotilla's is
    /// 1,000, because every page is a round trip (forwarded to the leader by a non-leader) and
    /// listing 1,000 units took 10 of them. Clients follow `nextPageToken` whatever the size.
    public var tokenLimit = 1_000
    /// fleet's `units_directory`.
    public var unitsDirectory = "/run/flotilla/units"
    /// fleet's `systemd_user`: drive the user manager (session bus) instead of the system one.
    public var systemdUser = false
    /// `lan` (memberlist's defaults) or `fast-lan` (probe 500 ms; small clusters).
    public var gossipProfile = "fast-lan"
    public var logLevel = "info"
    /// Raft tick and election timeout (in ticks).
    public var raftTickMilliseconds: Int64 = 10
    public var raftElectionTicks = 30
    /// The registry is snapshotted and the Raft log compacted behind it every this many
    /// entries: the log on disk, and a restart's replay, stay bounded.
    public var raftSnapshotEntries = 10_000
    /// Quotas, checked by the leader before it proposes a write that adds data (HTTP 507 past
    /// them; see `WriteQuota`). The hard limits every voter applies are larger
    /// (`RegistryLimits.standard`): these are the operator's, and may differ between machines.
    public var unitsMax = 100_000
    public var unitFileBytesMax = RegistryLimits.standard.unitFileSizeMax
    /// The unit files' bytes, names included (`RegistryState.unitFileBytes`). Every voter holds
    /// the registry in memory and writes it whole at each snapshot, and snapshots are refused
    /// past 1 GiB, so the default stays well under both.
    public var registryBytesMax = 512 << 20
    /// A voter whose data directory's file system has less free space than this raises the
    /// NOSPACE alarm (cleared above 5/4 of it): writes that add data are refused cluster-wide
    /// until space is back, while the log still has room for the snapshots that compact it.
    public var dataDirectoryReserveBytes: Int64 = 256 << 20
    /// The longest the Raft loop may go without running a task (a write or fsync of the data
    /// directory that does not return) before this voter takes its disk for hung and stops
    /// (`LoopStallWatch`). Generous: a slow disk's fsync takes seconds, a hung one forever.
    public var diskStallLimitMilliseconds: Int64 = 60_000

    public init() {}

    /// The machines' founding voter count must be odd and small: Raft's quorum arithmetic makes
    /// even counts pure cost, and a large voter set slows every commit.
    public static let votersMax = 7
}

/// A bad configuration: one message naming the key, the value and what was expected.
public struct ConfigurationError: Error, Equatable, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

extension DaemonConfiguration {
    /// fleet's keys with no meaning in Flotilla: accepted, reported, ignored.
    static let ignoredFleetKeys: Set<String> = [
        "etcd_servers", "etcd_key_prefix", "etcd_request_timeout", "etcd_cafile", "etcd_keyfile",
        "etcd_certfile", "etcd_username", "etcd_password", "authorized_keys_file", "verify_units",
        "enable_grpc", "disable_engine", "disable_watches", "verbosity",
    ]
    /// Keys of earlier Flotilla versions that the lease replaced: accepted, reported, ignored.
    static let replacedKeys: [String: String] = [
        "agent_fence_timeout": "the lease (agent_ttl) replaced it: a machine stops its units when it has not reached a majority of the voters for agent_ttl",
    ]

    /// Resolves the configuration. `fileText` is the configuration file's content (nil when
    /// there is none), `environment` the process environment, `arguments` the flags
    /// (`--public-ip=10.0.0.1` or `--public-ip 10.0.0.1`; dashes and underscores are the same).
    /// Returns the configuration and warnings for ignored keys.
    public static func resolve(fileText: String?, environment: [String: String], arguments: [String])
        throws(ConfigurationError) -> (DaemonConfiguration, warnings: [String])
    {
        var settings: [(key: String, value: String, source: String)] = []
        if let fileText {
            for (number, rawLine) in fileText.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let line = rawLine.trimmingWhitespace()
                if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
                guard let equals = line.firstIndex(of: "=") else {
                    throw ConfigurationError("configuration file line \(number + 1): expected key=value, got \(line.debugDescription)")
                }
                var value = String(line[line.index(after: equals)...]).trimmingWhitespace()
                if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") { value = String(value.dropFirst().dropLast()) }
                settings.append((normalized(String(line[..<equals])), value, "configuration file line \(number + 1)"))
            }
        }
        for (name, value) in environment.sorted(by: { $0.key < $1.key }) where name.hasPrefix("FLOTILLA_") {
            settings.append((normalized(String(name.dropFirst("FLOTILLA_".count))), value, "environment \(name)"))
        }
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            guard argument.hasPrefix("--") else { throw ConfigurationError("unexpected argument \(argument.debugDescription): flags look like --public-ip=10.0.0.1") }
            let body = argument.dropFirst(2)
            if let equals = body.firstIndex(of: "=") {
                settings.append((normalized(String(body[..<equals])), String(body[body.index(after: equals)...]), "flag \(argument)"))
            } else if Self.booleanFlags.contains(normalized(String(body))) {
                settings.append((normalized(String(body)), "true", "flag \(argument)"))
            } else {
                guard index + 1 < arguments.count else { throw ConfigurationError("flag \(argument) needs a value") }
                index += 1
                settings.append((normalized(String(body)), arguments[index], "flag \(argument)"))
            }
            index += 1
        }
        var configuration = DaemonConfiguration()
        var warnings: [String] = []
        for setting in settings {
            if ignoredFleetKeys.contains(setting.key) {
                warnings.append("\(setting.source): fleet's \(setting.key) has no meaning in Flotilla; ignored")
                continue
            }
            if let replacement = replacedKeys[setting.key] {
                warnings.append("\(setting.source): \(setting.key) is ignored: \(replacement)")
                continue
            }
            try configuration.set(setting.key, setting.value, source: setting.source)
        }
        try configuration.validate()
        return (configuration, warnings)
    }

    /// Flags that mean `=true` when given without a value.
    static let booleanFlags: Set<String> = ["systemd_user", "gossip_insecure_plaintext", "api_insecure_plaintext", "peer_insecure_plaintext"]

    static func normalized(_ key: String) -> String {
        key.trimmingWhitespace().lowercased().replacingAll("-", with: "_")
    }

    mutating func set(_ key: String, _ value: String, source: String) throws(ConfigurationError) {
        func integer(_ range: ClosedRange<Int64>) throws(ConfigurationError) -> Int64 {
            guard let number = Int64(value), range.contains(number) else {
                throw ConfigurationError("\(source): \(key) must be an integer in \(range.lowerBound)...\(range.upperBound), got \(value.debugDescription)")
            }
            return number
        }
        func duration() throws(ConfigurationError) -> Int64 {
            guard let milliseconds = Self.parseDurationMilliseconds(value) else {
                throw ConfigurationError("\(source): \(key) must be a duration like 500ms, 2s or 1m, got \(value.debugDescription)")
            }
            return milliseconds
        }
        func boolean() throws(ConfigurationError) -> Bool {
            guard let flag = ["true": true, "1": true, "yes": true, "false": false, "0": false, "no": false][value.lowercased()] else {
                throw ConfigurationError("\(source): \(key) must be true or false, got \(value.debugDescription)")
            }
            return flag
        }
        func bytes(_ range: ClosedRange<Int64>) throws(ConfigurationError) -> Int64 {
            guard let count = Self.parseBytes(value), range.contains(count) else {
                throw ConfigurationError("\(source): \(key) must be a size like 65536, 64KiB, 512MiB or 1GiB in \(range.lowerBound)...\(range.upperBound) bytes, got \(value.debugDescription)")
            }
            return count
        }
        func list() -> [String] { value.split(separator: ",").map { String($0).trimmingWhitespace() }.filter { !$0.isEmpty } }
        switch key {
        case "machine_id_path": machineIDPath = value
        case "public_ip": publicIP = value
        case "metadata":
            var pairs: [String: String] = [:]
            for item in list() {
                guard let equals = item.firstIndex(of: "="), equals != item.startIndex else {
                    throw ConfigurationError("\(source): metadata entries look like key=value, got \(item.debugDescription)")
                }
                pairs[String(item[..<equals])] = String(item[item.index(after: equals)...])
            }
            metadata = pairs
        case "data_dir", "data_directory": dataDirectory = value
        case "api_socket", "socket": apiSocketPath = value
        case "api_listen": apiListen = value
        case "api_tls_cert": apiTLSCertificatePath = value
        case "api_tls_key": apiTLSKeyPath = value
        case "api_insecure_plaintext": apiInsecurePlaintext = try boolean()
        case "gossip_port": gossipPort = Int(try integer(1...65_535))
        case "peer_port": peerPort = Int(try integer(1...65_535))
        case "raft_port": raftPort = Int(try integer(1...65_535))
        case "voters": voters = list()
        case "seeds": seeds = list()
        case "agent_ttl": agentTTLMilliseconds = try duration()
        case "agent_renew_interval": agentRenewIntervalMilliseconds = try duration()
        case "agent_stop_allowance": agentStopAllowanceMilliseconds = try duration()
        case "engine_reconcile_interval":
            // fleet took plain seconds here; a duration with a unit is accepted too.
            if let seconds = Int64(value) { engineReconcileIntervalMilliseconds = seconds * 1_000 } else { engineReconcileIntervalMilliseconds = try duration() }
        case "agent_reconcile_interval": agentReconcileIntervalMilliseconds = try duration()
        case "token_limit": tokenLimit = Int(try integer(1...10_000))
        case "units_directory": unitsDirectory = value
        case "systemd_user": systemdUser = try boolean()
        case "ca_file": caFilePath = value
        case "cert_file": certificateFilePath = value
        case "key_file": keyFilePath = value
        case "gossip_keyring_file": gossipKeyringPath = value
        case "gossip_insecure_plaintext": gossipInsecurePlaintext = try boolean()
        case "peer_insecure_plaintext": peerInsecurePlaintext = try boolean()
        case "gossip_profile":
            guard ["lan", "fast-lan"].contains(value) else { throw ConfigurationError("\(source): gossip_profile must be lan or fast-lan, got \(value.debugDescription)") }
            gossipProfile = value
        case "log_level":
            guard ["trace", "debug", "info", "notice", "warning", "error", "critical"].contains(value) else {
                throw ConfigurationError("\(source): log_level must be one of trace, debug, info, notice, warning, error, critical")
            }
            logLevel = value
        case "raft_tick": raftTickMilliseconds = try duration()
        case "raft_election_ticks": raftElectionTicks = Int(try integer(2...10_000))
        case "raft_snapshot_entries": raftSnapshotEntries = Int(try integer(16...10_000_000))
        case "max_units": unitsMax = Int(try integer(1...Int64(RegistryLimits.standard.unitsMax)))
        case "max_unit_file_bytes": unitFileBytesMax = Int(try bytes(1...Int64(RegistryLimits.standard.unitFileSizeMax)))
        case "max_registry_bytes": registryBytesMax = Int(try bytes(1...(1 << 30)))
        case "data_dir_reserve_bytes": dataDirectoryReserveBytes = try bytes(0...(1 << 40))
        case "disk_stall_limit":
            let milliseconds = try duration()
            guard (1_000...3_600_000).contains(milliseconds) else {
                throw ConfigurationError("\(source): disk_stall_limit must be between 1s and 1h, got \(value.debugDescription)")
            }
            diskStallLimitMilliseconds = milliseconds
        default:
            throw ConfigurationError("\(source): unknown setting \(key.debugDescription)")
        }
    }

    func validate() throws(ConfigurationError) {
        guard !publicIP.isEmpty else {
            throw ConfigurationError("public_ip is not set: give the address peers reach this machine at (--public-ip, FLOTILLA_PUBLIC_IP or public_ip= in the configuration file)")
        }
        guard Self.isIPv4(publicIP) else { throw ConfigurationError("public_ip must be an IPv4 address, got \(publicIP.debugDescription)") }
        for voter in voters where !Self.isIPv4(voter) {
            throw ConfigurationError("voters must be IPv4 addresses, got \(voter.debugDescription)")
        }
        guard Set(voters).count == voters.count else { throw ConfigurationError("voters lists an address twice: \(voters)") }
        guard voters.count <= Self.votersMax else { throw ConfigurationError("at most \(Self.votersMax) founding voters, got \(voters.count)") }
        guard Set([gossipPort, peerPort, raftPort]).count == 3 else {
            throw ConfigurationError("gossip_port, peer_port and raft_port must differ, got \(gossipPort), \(peerPort), \(raftPort)")
        }
        guard apiSocketPath.isEmpty || apiSocketPath.hasPrefix("/") else { throw ConfigurationError("api_socket must be an absolute path, got \(apiSocketPath.debugDescription)") }
        guard unitsDirectory.hasPrefix("/") else { throw ConfigurationError("units_directory must be an absolute path, got \(unitsDirectory.debugDescription)") }
        guard gossipKeyringPath.hasPrefix("/") else { throw ConfigurationError("gossip_keyring_file must be an absolute path, got \(gossipKeyringPath.debugDescription)") }
        guard dataDirectory.hasPrefix("/") else { throw ConfigurationError("data_dir must be an absolute path, got \(dataDirectory.debugDescription)") }
        if !apiListen.isEmpty, Self.hostAndPort(apiListen) == nil { throw ConfigurationError("api_listen must be host:port, got \(apiListen.debugDescription)") }
        try validateAPITLS()
        let peerTLSFiles = [caFilePath, certificateFilePath, keyFilePath]
        if peerTLSEnabled {
            guard peerTLSFiles.allSatisfy({ $0.hasPrefix("/") }) else {
                throw ConfigurationError("ca_file, cert_file and key_file must be absolute paths (or set peer_insecure_plaintext=true); got \(peerTLSFiles.map(\.debugDescription).joined(separator: ", "))")
            }
        }
        guard raftTickMilliseconds > 0, engineReconcileIntervalMilliseconds > 0, agentReconcileIntervalMilliseconds > 0 else {
            throw ConfigurationError("raft_tick, engine_reconcile_interval and agent_reconcile_interval must be positive")
        }
        do { _ = try leaseTiming() } catch { throw ConfigurationError(error.description) }
        guard raftElectionTicks >= 3 else { throw ConfigurationError("raft_election_ticks must be at least 3 (heartbeat is 1 tick)") }
    }

    /// The lease's timing; `validate()` made sure it can be built.
    public func leaseTiming() throws(LeaseTimingError) -> LeaseTiming {
        try LeaseTiming(leaseMilliseconds: agentTTLMilliseconds, renewalIntervalMilliseconds: agentRenewIntervalMilliseconds,
                        stopAllowanceMilliseconds: agentStopAllowanceMilliseconds)
    }

    public var peerTLSEnabled: Bool { !peerInsecurePlaintext }

    /// The founding voters, or this machine alone.
    public var effectiveVoters: [String] { voters.isEmpty ? [publicIP] : voters }
    public var isFoundingVoter: Bool { effectiveVoters.contains(publicIP) }

    /// TLS on the API needs a certificate and its key together, and a TCP listener to serve on.
    private func validateAPITLS() throws(ConfigurationError) {
        switch (apiTLSCertificatePath.isEmpty, apiTLSKeyPath.isEmpty) {
        case (true, true):
            guard apiListen.isEmpty || apiInsecurePlaintext else {
                throw ConfigurationError("api_listen \(apiListen) would serve the API in plain HTTP to anyone who reaches it (a unit runs its commands as root): set api_tls_cert and api_tls_key to serve HTTPS, or api_insecure_plaintext=true to accept that")
            }
            return
        case (false, true):
            throw ConfigurationError("api_tls_cert is set but api_tls_key is not: give both (the PEM certificate chain and its private key) or neither")
        case (true, false):
            throw ConfigurationError("api_tls_key is set but api_tls_cert is not: give both (the PEM certificate chain and its private key) or neither")
        case (false, false):
            break
        }
        guard apiTLSCertificatePath.hasPrefix("/"), apiTLSKeyPath.hasPrefix("/") else {
            throw ConfigurationError("api_tls_cert and api_tls_key must be absolute paths, got \(apiTLSCertificatePath.debugDescription) and \(apiTLSKeyPath.debugDescription)")
        }
        guard !apiListen.isEmpty else {
            throw ConfigurationError("api_tls_cert and api_tls_key are set but api_listen is not: TLS is served on the api_listen TCP listener (the unix socket needs none), so set api_listen=host:port or remove them")
        }
    }

    /// A byte count: a plain number or one with a binary suffix (KiB, MiB, GiB, TiB; K, M, G, T
    /// mean the same), as systemd's size settings take them.
    static func parseBytes(_ text: String) -> Int64? {
        let suffixes: [(String, Int64)] = [("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("TiB", 1 << 40),
                                           ("K", 1 << 10), ("M", 1 << 20), ("G", 1 << 30), ("T", 1 << 40)]
        for (suffix, factor) in suffixes where text.hasSuffix(suffix) {
            guard let number = Int64(text.dropLast(suffix.count)), number >= 0, number <= Int64.max / factor else { return nil }
            return number * factor
        }
        guard let number = Int64(text), number >= 0 else { return nil }
        return number
    }

    static func parseDurationMilliseconds(_ text: String) -> Int64? {
        let units: [(String, Int64)] = [("ms", 1), ("s", 1_000), ("m", 60_000), ("h", 3_600_000)]
        for (suffix, factor) in units where text.hasSuffix(suffix) {
            let number = text.dropLast(suffix.count)
            if let value = Int64(number), value >= 0, value <= 86_400_000 / factor { return value * factor }
            if suffix == "m" || suffix == "s" { continue }  // "ms" also ends in "s"
            return nil
        }
        return nil
    }

    static func isIPv4(_ text: String) -> Bool {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts.allSatisfy { part in
            !part.isEmpty && part.count <= 3 && part.allSatisfy(\.isASCIIDigit) && Int(part)! <= 255
        }
    }

    static func hostAndPort(_ text: String) -> (host: String, port: Int)? {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (1...65_535).contains(port) else { return nil }
        return (String(text[..<colon]), port)
    }
}

extension Character {
    var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}

extension StringProtocol {
    func trimmingWhitespace() -> String {
        var slice = Substring(self)
        while let first = slice.first, first == " " || first == "\t" || first == "\r" { slice = slice.dropFirst() }
        while let last = slice.last, last == " " || last == "\t" || last == "\r" { slice = slice.dropLast() }
        return String(slice)
    }

    func replacingAll(_ target: Character, with replacement: Character) -> String {
        String(map { $0 == target ? replacement : $0 })
    }
}
