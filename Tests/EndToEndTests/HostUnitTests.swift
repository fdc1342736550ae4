import Foundation
import Testing
import TestSupport

/// A cluster unit must never replace, stop or start a machine's own unit of the same name.
@Suite(
    "host units on the test bed",
    .enabled(if: FlotillaCluster.missingCapability == nil,
             Comment(rawValue: "this host lacks \(FlotillaCluster.missingCapability ?? "nothing")"))
)
struct HostUnitTests {
    /// Every test-bed machine runs the host package's docker.service (/lib/systemd/system). A
    /// cluster unit of that name, pinned to machine 1, is refused there: the machine's docker goes
    /// on running from its own file, nothing is written or linked, the cluster sees the unit as
    /// refused, and destroying it leaves docker alone too. The always-reserved names are refused
    /// before they reach any machine.
    @Test func aClusterUnitNamedLikeAHostUnitIsRefusedAndTheHostsUnitUntouched() async throws {
        try await onOwnThread {
            try FlotillaCluster.with(machines: 3, tag: "hostu") { cluster in
                let bed = cluster.bed
                func docker() throws -> (active: String, fragment: String, mainPID: String) {
                    (try cluster.property(1, "docker.service", "ActiveState"), try cluster.property(1, "docker.service", "FragmentPath"),
                     try cluster.property(1, "docker.service", "MainPID"))
                }
                let before = try docker()
                #expect(before.active == "active" && before.fragment == "/lib/systemd/system/docker.service", "\(before)")

                let machineID = try bed.exec(1, "cat", "/etc/machine-id")
                let impostor = "[Service]\nExecStart=/bin/sleep 1000000\n\n[X-Fleet]\nMachineID=\(machineID)\n"
                try bed.exec(1, "sh", "-c", "mkdir -p /tmp/hostu && printf '%s' '\(impostor)' > /tmp/hostu/docker.service")
                try cluster.ctl(1, "start", "--no-block", "/tmp/hostu/docker.service")
                struct States: Decodable {
                    struct State: Decodable { var name: String; var machineID: String; var systemdLoadState: String; var systemdActiveState: String }
                    var states: [State]?
                }
                var reported: States.State?
                let refused = try Testbed.eventually(timeoutSeconds: 30, intervalSeconds: 0.3) {
                    let output = try bed.execAllowingFailure(2, "curl", "-sf", "--unix-socket", "/var/run/flotilla.sock",
                                                             "http://localhost/fleet/v1/state?unitName=docker.service")
                    reported = (try? JSONDecoder().decode(States.self, from: Data(output.standardOutput.utf8)))?.states?.first
                    return reported?.systemdLoadState == "refused"
                }
                #expect(refused, "state: \(String(describing: reported)); \((try? cluster.diagnostics()) ?? "")")
                #expect(reported?.machineID == machineID && reported?.systemdActiveState == "failed")
                let warning = try cluster.journalOnceItContains(1, ["refusing a cluster unit", "/lib/systemd/system/docker.service"])
                #expect(warning.contains("refusing a cluster unit"), "\(warning)")
                // Give the agent more reconciles: still nothing done to the host's docker.
                Thread.sleep(forTimeInterval: 2)
                #expect(try docker() == before)
                let written = try bed.execAllowingFailure(1, "sh", "-c", "ls /run/flotilla/units/docker.service /run/systemd/system/docker.service 2>&1")
                #expect(!written.succeeded, "\(written.standardOutput)")

                try cluster.ctl(2, "destroy", "docker.service")
                Thread.sleep(forTimeInterval: 2)
                #expect(try docker() == before)

                // The host's plumbing is refused at the API, for any machine.
                for name in ["dbus.service", "systemd-resolved.service", "flotillad.service", "-.mount"] {
                    try bed.exec(1, "sh", "-c", "printf '[Service]\\nExecStart=/bin/true\\n' > '/tmp/hostu/\(name)'")
                    let attempt = try cluster.ctlAllowingFailure(1, "submit", "/tmp/hostu/\(name)")
                    #expect(!attempt.succeeded && (attempt.standardError + attempt.standardOutput).contains("reserved for the host"),
                            "\(name): \(attempt.standardError) \(attempt.standardOutput)")
                }
                #expect(try cluster.ctl(1, "list-unit-files", "--no-legend").isEmpty)
            }
        }
    }
}
