@testable import Daemon
import TestSupport
import HTTPAPI
import Testing

@Suite(.onBackgroundThreads) struct ConfigurationTests {
    @Test func fileThenEnvironmentThenFlagsWithFleetsKeys() throws {
        let file = """
        # fleet's file, reused
        public_ip="10.0.0.1"
        metadata=region=eu,disk=ssd
        etcd_servers=http://127.0.0.1:2379
        agent_ttl=30s
        engine_reconcile_interval=5
        """
        let (configuration, warnings) = try DaemonConfiguration.resolve(
            fileText: file, environment: ["FLOTILLA_VOTERS": "10.0.0.1,10.0.0.2,10.0.0.3", "PATH": "/bin"],
            arguments: ["--public-ip", "10.0.0.2", "--agent-ttl=3s", "--systemd-user"])
        #expect(configuration.publicIP == "10.0.0.2")
        #expect(configuration.metadata == ["region": "eu", "disk": "ssd"])
        #expect(configuration.voters == ["10.0.0.1", "10.0.0.2", "10.0.0.3"])
        #expect(configuration.agentTTLMilliseconds == 3_000)
        #expect(configuration.engineReconcileIntervalMilliseconds == 5_000)
        #expect(configuration.systemdUser)
        #expect(configuration.isFoundingVoter)
        #expect(warnings.count == 1 && warnings[0].contains("etcd_servers"))
    }

    /// The lease's settings, and the key the lease replaced: accepted with a warning that says why.
    @Test func leaseSettingsAndTheReplacedFenceKey() throws {
        let (configuration, warnings) = try DaemonConfiguration.resolve(
            fileText: "public_ip=10.0.0.1\nagent_fence_timeout=2s\n", environment: [:],
            arguments: ["--agent-ttl=3s", "--agent-renew-interval=250ms", "--agent-stop-allowance=2s"])
        let timing = try configuration.leaseTiming()
        #expect(timing.leaseMilliseconds == 3_000 && timing.renewalIntervalMilliseconds == 250 && timing.stopAllowanceMilliseconds == 2_000)
        #expect(timing.expiryMilliseconds > 3_000 + 2_000)
        #expect(warnings.count == 1 && warnings[0].contains("agent_fence_timeout is ignored"), "\(warnings)")
    }

    @Test func badConfigurationGivesOneClearMessage() {
        let cases: [(String?, [String], String)] = [
            (nil, [], "public_ip is not set"),
            ("public_ip=10.0.0.1\nbogus", [], "line 2: expected key=value"),
            ("public_ip=10.0.0.1\ncolour=blue", [], "unknown setting \"colour\""),
            (nil, ["--public-ip=10.0.0.300"], "public_ip must be an IPv4 address"),
            (nil, ["--public-ip=10.0.0.1", "--agent-ttl=soon"], "agent_ttl must be a duration"),
            (nil, ["--public-ip=10.0.0.1", "--voters=10.0.0.1,10.0.0.1"], "voters lists an address twice"),
            (nil, ["--public-ip=10.0.0.1", "--peer-port=7946"], "must differ"),
            (nil, ["--public-ip=10.0.0.1", "--agent-ttl=0s"], "the lease (agent_ttl) must be between"),
            (nil, ["--public-ip=10.0.0.1", "--agent-ttl=2s", "--agent-renew-interval=1s"], "at most a third of the lease"),
            (nil, ["--public-ip=10.0.0.1", "--agent-stop-allowance=1h"], "agent_stop_allowance"),
            (nil, ["positional"], "unexpected argument"),
            (nil, ["--public-ip=10.0.0.1", "--api-listen=0.0.0.0:7950"], "plain HTTP to anyone who reaches it"),
            (nil, ["--public-ip"], "needs a value"),
            (nil, ["--public-ip=10.0.0.1", "--api-listen=0.0.0.0:7950", "--api-tls-cert=/etc/flotilla/api.crt"],
             "api_tls_cert is set but api_tls_key is not"),
            ("public_ip=10.0.0.1\napi_listen=0.0.0.0:7950\napi_tls_key=/etc/flotilla/api.key", [],
             "api_tls_key is set but api_tls_cert is not"),
            (nil, ["--public-ip=10.0.0.1", "--api-tls-cert=/etc/flotilla/api.crt", "--api-tls-key=/etc/flotilla/api.key"],
             "api_tls_cert and api_tls_key are set but api_listen is not"),
            (nil, ["--public-ip=10.0.0.1", "--api-listen=0.0.0.0:7950", "--api-tls-cert=api.crt", "--api-tls-key=/etc/flotilla/api.key"],
             "must be absolute paths"),
        ]
        for (file, arguments, expected) in cases {
            do {
                _ = try DaemonConfiguration.resolve(fileText: file, environment: [:], arguments: arguments)
                Issue.record("accepted \(arguments) / \(file ?? "no file")")
            } catch {
                #expect(error.message.contains(expected), "\(error.message) should mention \(expected)")
            }
        }
    }

    @Test func apiListenServesTLSWhenCertificateAndKeyAreBothSet() throws {
        let (plain, _) = try DaemonConfiguration.resolve(
            fileText: "public_ip=10.0.0.1\napi_listen=127.0.0.1:7950\napi_socket=\napi_insecure_plaintext=true", environment: [:], arguments: [])
        #expect(DaemonService.userListeners(plain) == [.tcp(host: "127.0.0.1", port: 7950)])

        let (secured, _) = try DaemonConfiguration.resolve(
            fileText: "public_ip=10.0.0.1\napi_listen=127.0.0.1:7950\napi_tls_cert=/etc/flotilla/api.crt",
            environment: ["FLOTILLA_API_TLS_KEY": "/etc/flotilla/api.key"], arguments: [])
        #expect(secured.apiTLSCertificatePath == "/etc/flotilla/api.crt")
        #expect(secured.apiTLSKeyPath == "/etc/flotilla/api.key")
        #expect(DaemonService.userListeners(secured) == [
            .unix(path: "/var/run/flotilla.sock", mode: 0o660),
            .tls(host: "127.0.0.1", port: 7950, certificateChainPath: "/etc/flotilla/api.crt", privateKeyPath: "/etc/flotilla/api.key",
                 clientCAPath: "/etc/flotilla/tls/flotilla-ca.pem"),
        ], "with peer TLS (the default), the cluster's CA vouches for client certificates")
    }

    @Test func durations() {
        #expect(DaemonConfiguration.parseDurationMilliseconds("250ms") == 250)
        #expect(DaemonConfiguration.parseDurationMilliseconds("2s") == 2_000)
        #expect(DaemonConfiguration.parseDurationMilliseconds("1m") == 60_000)
        #expect(DaemonConfiguration.parseDurationMilliseconds("1h") == 3_600_000)
        #expect(DaemonConfiguration.parseDurationMilliseconds("1.5s") == nil)
        #expect(DaemonConfiguration.parseDurationMilliseconds("-1s") == nil)
        #expect(DaemonConfiguration.parseDurationMilliseconds("5") == nil)
    }

    @Test func byteSizes() throws {
        #expect(DaemonConfiguration.parseBytes("65536") == 65_536)
        #expect(DaemonConfiguration.parseBytes("64KiB") == 65_536)
        #expect(DaemonConfiguration.parseBytes("64K") == 65_536)
        #expect(DaemonConfiguration.parseBytes("512MiB") == 512 << 20)
        #expect(DaemonConfiguration.parseBytes("1GiB") == 1 << 30)
        #expect(DaemonConfiguration.parseBytes("1.5GiB") == nil)
        #expect(DaemonConfiguration.parseBytes("-1") == nil)
        #expect(DaemonConfiguration.parseBytes("9999999999TiB") == nil, "an overflow is refused, not wrapped")
        #expect(DaemonConfiguration.formatBytes(256 << 20) == "256MiB")
        #expect(DaemonConfiguration.formatBytes(1000) == "1000")
        var configuration = DaemonConfiguration()
        try configuration.set("max_registry_bytes", "4MiB", source: "test")
        try configuration.set("max_units", "3", source: "test")
        try configuration.set("data_dir_reserve_bytes", "0", source: "test")
        #expect(configuration.registryBytesMax == 4 << 20 && configuration.unitsMax == 3 && configuration.dataDirectoryReserveBytes == 0)
        #expect(throws: ConfigurationError.self) { try configuration.set("max_unit_file_bytes", "1MiB", source: "test") }
        #expect(throws: ConfigurationError.self) { try configuration.set("max_registry_bytes", "2GiB", source: "test") }
        #expect(throws: ConfigurationError.self) { try configuration.set("max_units", "0", source: "test") }
    }
}

/// `flotillad --help` lists every setting with its default, from `DaemonConfiguration.settings`.
@Suite(.onBackgroundThreads) struct ConfigurationReferenceTests {
    @Test func everyListedSettingIsAcceptedAndItsDefaultRoundTrips() throws {
        let defaults = DaemonConfiguration()
        #expect(Set(DaemonConfiguration.settings.map(\.key)).count == DaemonConfiguration.settings.count)
        for setting in DaemonConfiguration.settings {
            let value = try #require(defaults.value(of: setting.key), "\(setting.key) has no value")
            var configuration = DaemonConfiguration()
            try configuration.set(setting.key, value, source: "test")
            #expect(configuration == defaults, "\(setting.key)=\(value) changed the defaults")
        }
    }

    /// A configuration written back out as a file, key by key, reads in as the same one: so every
    /// field that a key sets is covered by the list.
    @Test func aConfigurationWrittenOutKeyByKeyReadsBackTheSame() throws {
        let (configuration, _) = try DaemonConfiguration.resolve(fileText: nil, environment: [:], arguments: [
            "--public-ip=10.0.0.2", "--voters=10.0.0.1,10.0.0.2,10.0.0.3", "--seeds=10.0.0.9:7000",
            "--metadata=region=eu,disk=ssd", "--machine-id-path=/run/id", "--data-dir=/srv/flotilla",
            "--units-directory=/run/u", "--api-socket=/run/f.sock", "--api-listen=0.0.0.0:4001",
            "--gossip-port=8000", "--peer-port=8001", "--raft-port=8002", "--agent-ttl=3s",
            "--agent-renew-interval=900ms", "--agent-stop-allowance=2s", "--engine-reconcile-interval=7s",
            "--agent-reconcile-interval=9s", "--token-limit=50", "--systemd-user", "--gossip-profile=lan",
            "--log-level=debug", "--raft-tick=20ms", "--raft-election-ticks=40", "--raft-snapshot-entries=500",
            "--api-insecure-plaintext", "--gossip-keyring-file=/srv/keys", "--gossip-insecure-plaintext",
        ])
        let file = DaemonConfiguration.settings.map { "\($0.key)=\(configuration.value(of: $0.key)!)" }.joined(separator: "\n")
        let (reread, warnings) = try DaemonConfiguration.resolve(fileText: file, environment: [:], arguments: [])
        #expect(warnings.isEmpty)
        #expect(reread == configuration, "\(file)")
        #expect(reread != DaemonConfiguration())
    }

    @Test func theHelpListsEveryKeyWithItsDefault() {
        let help = DaemonConfiguration.settingsHelp()
        for setting in DaemonConfiguration.settings {
            let value = DaemonConfiguration().value(of: setting.key)!
            #expect(help.contains("  \(setting.key) (default: \(value.isEmpty ? "empty" : value))"), "\(setting.key)")
        }
        #expect(help.contains("agent_ttl (default: 2s)") && help.contains("gossip_port (default: 7946)"))
    }
}
