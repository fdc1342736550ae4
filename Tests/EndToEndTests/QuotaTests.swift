import Foundation
import Testing
import TestSupport

/// Issue 14 item 3: quotas and the NOSPACE alarm, on real machines. Past `max_units` or
/// `max_unit_file_bytes` a write is refused with 507 in fleet's error shape; a voter whose data
/// directory (a real tmpfs, really filled) drops below its reserve raises NOSPACE, which every
/// machine shows, and the cluster then refuses writes that add data but still stops, starts and
/// destroys; once space is back the alarm clears by itself.
@Suite(
    "quotas and the NOSPACE alarm on the test bed",
    .enabled(if: FlotillaCluster.missingCapability == nil,
             Comment(rawValue: "this host lacks \(FlotillaCluster.missingCapability ?? "nothing")"))
)
struct QuotaTests {
    static let smallDisk = "/var/lib/flotilla-quota"

    static func writeUnit(_ cluster: FlotillaCluster, on machine: Int, _ name: String, descriptionBytes: Int = 0) throws {
        let description = descriptionBytes > 0 ? "[Unit]\\nDescription=\(String(repeating: "d", count: descriptionBytes))\\n" : ""
        try cluster.bed.exec(machine, "sh", "-c", "printf '\(description)[Service]\\nExecStart=/bin/sleep 1000000\\n' > /tmp/\(name)")
    }

    /// A PUT of fleet's API through the machine's socket: the HTTP status and the body.
    static func put(_ cluster: FlotillaCluster, on machine: Int, _ name: String) throws -> (status: String, body: String) {
        let body = #"{"desiredState":"inactive","options":[{"section":"Service","name":"ExecStart","value":"/bin/sleep 1000000"}]}"#
        let output = try cluster.bed.exec(machine, "curl", "-s", "--max-time", "10", "-w", "\n%{http_code}", "-X", "PUT",
                                          "-H", "Content-Type: application/json", "--data", body, "--unix-socket",
                                          "/var/run/flotilla.sock", "http://localhost/fleet/v1/units/\(name)")
        let lines = output.split(separator: "\n", omittingEmptySubsequences: false)
        return (String(lines.last ?? ""), lines.dropLast().joined(separator: "\n"))
    }

    static func metrics(_ cluster: FlotillaCluster, on machine: Int) throws -> String {
        try cluster.bed.exec(machine, "curl", "-s", "--max-time", "10", "--unix-socket", "/var/run/flotilla.sock", "http://localhost/metrics")
    }

    @Test func pastAQuotaAWriteIsRefusedWith507AndADeleteMakesRoom() async throws {
        try await onOwnThread {
            try FlotillaCluster.with(machines: 3, tag: "quota", daemonArguments: { _, _ in
                ["--max-units=3", "--max-unit-file-bytes=2KiB"]
            }) { cluster in
                for number in 1...3 {
                    try Self.writeUnit(cluster, on: 1, "q-\(number).service")
                    try cluster.ctl(1, "submit", "/tmp/q-\(number).service")
                }
                try Self.writeUnit(cluster, on: 1, "q-4.service")
                let refused = try cluster.ctlAllowingFailure(1, "submit", "/tmp/q-4.service")
                #expect(!refused.succeeded && refused.standardError.contains("max_units is 3"), "\(refused.standardError)")
                // From a follower too (forwarded, the leader's answer kept), and in fleet's shape.
                let follower = try (1...3).first { $0 != (try cluster.leaderMachine()) }!
                let answer = try Self.put(cluster, on: follower, "q-5.service")
                #expect(answer.status == "507", "\(answer)")
                #expect(answer.body.contains(#""code":507"#) && answer.body.contains("max_units is 3"), "\(answer.body)")

                // A delete is always accepted, and makes room.
                try cluster.ctl(1, "destroy", "q-1.service")
                try cluster.ctl(1, "submit", "/tmp/q-4.service")
                #expect(try cluster.ctl(1, "list-unit-files", "--no-legend", "--fields=unit").split(separator: "\n").sorted()
                    == ["q-2.service", "q-3.service", "q-4.service"])

                // A file over max_unit_file_bytes: refused, whatever the unit count.
                try cluster.ctl(1, "destroy", "q-2.service")
                try Self.writeUnit(cluster, on: 1, "big.service", descriptionBytes: 3_000)
                let big = try cluster.ctlAllowingFailure(1, "submit", "/tmp/big.service")
                #expect(!big.succeeded && big.standardError.contains("max_unit_file_bytes is 2048"), "\(big.standardError)")

                let leader = try cluster.leaderMachine()
                let metrics = try Self.metrics(cluster, on: leader)
                let refusals = metrics.split(separator: "\n").first { $0.hasPrefix(#"flotilla_writes_refused_total{reason="quota"}"#) }
                #expect(refusals.flatMap { Int($0.split(separator: " ").last ?? "") }.map { $0 >= 3 } == true, "\(String(describing: refusals))")
                #expect(metrics.contains("flotilla_registry_units_max 3"))
            }
        }
    }

    @Test func aVoterShortOfDiskRaisesNoSpaceWhichRefusesWritesThatAddDataUntilSpaceIsBack() async throws {
        try await onOwnThread {
            // Every voter's data on a 16 MiB tmpfs of its own with a 4 MiB reserve.
            try FlotillaCluster.with(machines: 3, tag: "nospc", daemonArguments: { bed, machine in
                try bed.exec(machine, "sh", "-c", "mkdir -p \(Self.smallDisk) && mount -t tmpfs -o size=16m,mode=0700 tmpfs \(Self.smallDisk)")
                return ["--data-dir=\(Self.smallDisk)", "--data-dir-reserve-bytes=4MiB"]
            }) { cluster in
                let bed = cluster.bed
                try Self.writeUnit(cluster, on: 1, "kept.service")
                try cluster.ctl(1, "start", "/tmp/kept.service")
                #expect(try cluster.ctl(1, "cluster").contains("alarms:    none"))

                // A follower's disk fills to 2 MiB free: under its reserve, not yet full.
                let full = try (1...3).first { $0 != (try cluster.leaderMachine()) }!
                let fullID = try bed.exec(full, "cat", "/etc/machine-id")
                try bed.exec(full, "sh", "-c", """
                    avail=$(df --output=avail -B1 \(Self.smallDisk) | tail -1); \
                    dd if=/dev/zero of=\(Self.smallDisk)/filler bs=65536 count=$(( (avail - 2097152) / 65536 )) status=none
                    """)
                var status = ""
                let raised = try Testbed.eventually(timeoutSeconds: 30, intervalSeconds: 0.3) {
                    status = try cluster.ctl(1, "cluster")
                    return status.contains("NOSPACE \(fullID)")
                }
                #expect(raised, "\(status) \((try? cluster.diagnostics()) ?? "")")
                // Every machine shows it: list-machines on stderr (its table unchanged), the
                // alarms column, /metrics.
                for machine in 1...3 {
                    let listed = try cluster.ctlAllowingFailure(machine, "list-machines", "--no-legend")
                    #expect(listed.succeeded && listed.standardError.contains("ALARM NOSPACE \(fullID)"), "m\(machine): \(listed.standardError)")
                    #expect(listed.standardOutput.split(separator: "\n").count == 3)
                    #expect(try Self.metrics(cluster, on: machine).contains(#"flotilla_nospace_alarm{machine="\#(fullID)"} 1"#))
                }
                let columns = try cluster.ctl(1, "list-machines", "--no-legend", "--full", "--fields=machine,alarms")
                #expect(columns.split(separator: "\n").contains { $0.hasPrefix(fullID) && $0.hasSuffix("NOSPACE") }, "\(columns)")

                // Writes that add data: 507. Stops, starts and destroys go on.
                try Self.writeUnit(cluster, on: 1, "new.service")
                let refused = try cluster.ctlAllowingFailure(1, "submit", "/tmp/new.service")
                #expect(!refused.succeeded && refused.standardError.contains("NOSPACE alarm"), "\(refused.standardError)")
                #expect(try Self.put(cluster, on: 2, "new2.service").status == "507")
                try cluster.ctl(1, "stop", "kept.service")
                #expect(try Testbed.eventually(timeoutSeconds: 30) { try cluster.machinesRunning("kept.service").isEmpty })
                try cluster.ctl(1, "start", "kept.service")
                #expect(try Testbed.eventually(timeoutSeconds: 30) { try cluster.machinesRunning("kept.service").count == 1 })
                try cluster.ctl(1, "destroy", "kept.service")
                #expect(try Testbed.eventually(timeoutSeconds: 30) { try cluster.machinesRunning("kept.service").isEmpty })
                #expect(try cluster.property(full, "flotillad.service", "ActiveState") == "active", "the short machine keeps running")

                // Space back: the alarm clears by itself and the same submit goes through.
                try bed.exec(full, "rm", "\(Self.smallDisk)/filler")
                let cleared = try Testbed.eventually(timeoutSeconds: 30, intervalSeconds: 0.3) {
                    status = try cluster.ctl(1, "cluster")
                    return status.contains("alarms:    none")
                }
                #expect(cleared, "\(status)")
                try cluster.ctl(1, "submit", "/tmp/new.service")
            }
        }
    }
}
