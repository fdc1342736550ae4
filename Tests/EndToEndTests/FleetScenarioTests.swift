import Foundation
import Testing
import TestSupport

/// fleet's functional scheduling scenarios (its functional/scheduling_test.go: TestScheduleConflicts,
/// TestScheduleGlobalConflicts, TestScheduleMachineOf, TestScheduleReplace), replayed on three
/// test-bed machines with flotillactl, which drives the HTTP API as fleetctl does. Each scenario
/// checks what runs where in the machines' own systemd, and destroys its units after.
@Suite(
    "fleet's scheduling scenarios on the test bed",
    .enabled(if: FlotillaCluster.missingCapability == nil,
             Comment(rawValue: "this host lacks \(FlotillaCluster.missingCapability ?? "nothing")"))
)
struct FleetScenarioTests {
    /// Writes /tmp/scenario/NAME on machine 1 with a sleeping service and the `[X-Fleet]` lines.
    func write(_ cluster: FlotillaCluster, _ name: String, _ fleet: [String] = []) throws -> String {
        let text = "[Service]\nExecStart=/bin/sleep 1000000\n" + (fleet.isEmpty ? "" : "\n[X-Fleet]\n" + fleet.joined(separator: "\n") + "\n")
        let path = "/tmp/scenario/\(name)"
        try cluster.bed.exec(1, "sh", "-c", "mkdir -p /tmp/scenario && cat > \(path) <<'UNIT'\n\(text)UNIT")
        return path
    }

    /// The machines running each of `units`, a second after `condition` held (or `timeoutSeconds` passed).
    func settled(_ cluster: FlotillaCluster, _ units: [String], timeoutSeconds: Double = 30,
                 until condition: ([String: [Int]]) -> Bool) throws -> [String: [Int]] {
        var placement: [String: [Int]] = [:]
        _ = try Testbed.eventually(timeoutSeconds: timeoutSeconds, intervalSeconds: 0.5) {
            placement = Dictionary(uniqueKeysWithValues: try units.map { ($0, try cluster.machinesRunning($0)) })
            return condition(placement)
        }
        Thread.sleep(forTimeInterval: 1)
        return Dictionary(uniqueKeysWithValues: try units.map { ($0, try cluster.machinesRunning($0)) })
    }

    func destroy(_ cluster: FlotillaCluster, _ units: [String]) throws {
        try cluster.bed.exec(1, [cluster.control, "destroy"] + units)
        #expect(try Testbed.eventually(timeoutSeconds: 30) { try units.allSatisfy { try cluster.machinesRunning($0).isEmpty } })
    }

    @Test func schedulingScenarios() async throws {
        try await onOwnThread {
            try FlotillaCluster.with(machines: 3, tag: "fleetfn") { cluster in
                // TestScheduleConflicts: five units that conflict with each other, three machines:
                // three run, on three different machines; all five unit files exist.
                let conflicts = (0..<5).map { "conflict.\($0).service" }
                for unit in conflicts {
                    try cluster.bed.exec(1, cluster.control, "start", "--no-block", try write(cluster, unit, ["Conflicts=conflict.*"]))
                }
                let files = try cluster.ctl(1, "list-unit-files", "--no-legend").split(separator: "\n")
                #expect(files.count == 5, "\(files)")
                let spread = try settled(cluster, conflicts) { $0.values.filter { !$0.isEmpty }.count == 3 }
                let running = spread.filter { !$0.value.isEmpty }
                #expect(running.count == 3 && running.values.allSatisfy { $0.count == 1 }, "\(spread)")
                #expect(Set(running.values.flatMap { $0 }) == [1, 2, 3], "\(spread)")
                try destroy(cluster, conflicts)

                // TestScheduleGlobalConflicts: a global unit whose glob matches its own name runs
                // everywhere; a second one that conflicts with it, launched later, runs nowhere.
                let global0 = "conflict-global.0.service", global1 = "conflict-global.1.service"
                let globalOptions = ["Global=true", "Conflicts=conflict-global.*.service"]
                try cluster.bed.exec(1, cluster.control, "start", "--no-block", try write(cluster, global0, globalOptions))
                var globals = try settled(cluster, [global0]) { $0[global0] == [1, 2, 3] }
                #expect(globals[global0] == [1, 2, 3], "\(globals)")
                try cluster.bed.exec(1, cluster.control, "start", "--no-block", try write(cluster, global1, globalOptions))
                // What must not happen: give it the time a unit takes to start here, many times over.
                globals = try settled(cluster, [global0, global1], timeoutSeconds: 5) { _ in false }
                #expect(globals[global0] == [1, 2, 3] && globals[global1] == [], "\(globals)")
                try destroy(cluster, [global0, global1])

                // TestScheduleReplace: a unit that replaces a running one lands on another machine.
                try cluster.bed.exec(1, cluster.control, "start", try write(cluster, "replace.0.service"))
                _ = try settled(cluster, ["replace.0.service"]) { $0["replace.0.service"]?.count == 1 }
                try cluster.bed.exec(1, cluster.control, "start", "--no-block",
                                     try write(cluster, "replace.1.service", ["Replaces=replace.0.service"]))
                let replaced = try settled(cluster, ["replace.0.service", "replace.1.service"]) {
                    $0["replace.0.service"]?.count == 1 && $0["replace.1.service"]?.count == 1
                }
                #expect(replaced["replace.0.service"]?.count == 1 && replaced["replace.1.service"]?.count == 1
                        && replaced["replace.0.service"] != replaced["replace.1.service"], "\(replaced)")
                try destroy(cluster, ["replace.0.service", "replace.1.service"])

                // TestScheduleMachineOf: three ping/pong pairs, each pong MachineOf its ping, share
                // a machine; when one pair's machine loses its flotillad, the pair moves together.
                var pairs: [String] = []
                for index in 0..<3 {
                    let ping = "ping.\(index).service", pong = "pong.\(index).service"
                    try cluster.bed.exec(1, cluster.control, "start", "--no-block", try write(cluster, ping),
                                         try write(cluster, pong, ["MachineOf=\(ping)"]))
                    pairs += [ping, pong]
                }
                let together: ([String: [Int]]) -> Bool = { placement in
                    (0..<3).allSatisfy { placement["ping.\($0).service"]?.count == 1 && placement["ping.\($0).service"] == placement["pong.\($0).service"] }
                }
                let before = try settled(cluster, pairs, until: together)
                #expect(together(before), "\(before)")
                // Machine 1 holds the test's unit files: move a pair that is not on it.
                let moved = (0..<3).first { before["ping.\($0).service"] != [1] } ?? 1
                let lost = before["ping.\(moved).service"]?.first ?? 2
                try cluster.bed.exec(lost, "systemctl", "stop", "flotillad.service")
                let after = try settled(cluster, pairs) { placement in
                    together(placement) && placement["ping.\(moved).service"] != [lost]
                }
                #expect(together(after) && after["ping.\(moved).service"] != [lost], "before \(before), after \(after), lost m\(lost)")
            }
        }
    }
}
