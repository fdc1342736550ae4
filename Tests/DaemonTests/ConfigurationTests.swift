@testable import Daemon
import Testing

@Suite struct ConfigurationTests {
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

    @Test func badConfigurationGivesOneClearMessage() {
        let cases: [(String?, [String], String)] = [
            (nil, [], "public_ip is not set"),
            ("public_ip=10.0.0.1\nbogus", [], "line 2: expected key=value"),
            ("public_ip=10.0.0.1\ncolour=blue", [], "unknown setting \"colour\""),
            (nil, ["--public-ip=10.0.0.300"], "public_ip must be an IPv4 address"),
            (nil, ["--public-ip=10.0.0.1", "--agent-ttl=soon"], "agent_ttl must be a duration"),
            (nil, ["--public-ip=10.0.0.1", "--voters=10.0.0.1,10.0.0.1"], "voters lists an address twice"),
            (nil, ["--public-ip=10.0.0.1", "--peer-port=7946"], "must differ"),
            (nil, ["--public-ip=10.0.0.1", "--agent-ttl=0s", "--agent-fence-timeout=5s"], "agent_fence_timeout"),
            (nil, ["positional"], "unexpected argument"),
            (nil, ["--public-ip"], "needs a value"),
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

    @Test func durations() {
        #expect(DaemonConfiguration.parseDurationMilliseconds("250ms") == 250)
        #expect(DaemonConfiguration.parseDurationMilliseconds("2s") == 2_000)
        #expect(DaemonConfiguration.parseDurationMilliseconds("1m") == 60_000)
        #expect(DaemonConfiguration.parseDurationMilliseconds("1h") == 3_600_000)
        #expect(DaemonConfiguration.parseDurationMilliseconds("1.5s") == nil)
        #expect(DaemonConfiguration.parseDurationMilliseconds("-1s") == nil)
        #expect(DaemonConfiguration.parseDurationMilliseconds("5") == nil)
    }
}
