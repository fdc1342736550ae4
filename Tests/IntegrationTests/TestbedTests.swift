import TestSupport
import Foundation
import Testing

/// The test bed itself (Contrib/testbed): real machines run docker units under their own
/// systemd, and the per-pair network cut really drops traffic.
@Suite(
    "Test bed",
    .serialized,
    .disabled(
        if: Testbed.missingHostCapability != nil,
        Comment(rawValue: "this host lacks \(Testbed.missingHostCapability ?? "nothing")")
    )
)
struct TestbedTests {
    static let machineCount = 3
    static let listenerPort = 7000

    @Test func dockerUnitStartsAndStopsOnEveryMachine() async throws {
        // Blocks for minutes on the machines: off the cooperative pool (OwnThreadExecutor).
        try await onOwnThread {
            try Testbed.with(machines: Self.machineCount, tag: "docker") { bed in
                for machine in 1...Self.machineCount {
                    try checkDockerUnit(on: machine, of: bed)
                }
            }
        }
    }

    @Test func cutDropsTCPBetweenThePairAndHealRestoresIt() async throws {
        // Blocks for minutes on the machines: off the cooperative pool (OwnThreadExecutor).
        try await onOwnThread {
            try Testbed.with(machines: Self.machineCount, tag: "cut") { bed in
                // A persistent listener on m2 (busybox's nc: -ll keeps listening), run as a unit so
                // that it belongs to m2's systemd rather than to the host.
                try bed.exec(
                    2, "systemd-run", "--unit=flotilla-listen", "busybox", "nc", "-ll",
                    "-p", String(Self.listenerPort), "-e", "/bin/echo", "hello")
                let address = try bed.address(2)

                let reachableBeforeCut = try Testbed.eventually(timeoutSeconds: 10) {
                    try connects(from: 1, to: address, in: bed)
                }
                #expect(reachableBeforeCut, "m1 cannot reach the listener on m2 before any cut")

                try bed.cut(1, 2)
                let started = Date()
                #expect(try !connects(from: 1, to: address, in: bed), "m1 reached m2 through the cut")
                // Cut links drop packets, so the attempt must have waited for its own timeout rather
                // than being refused.
                #expect(Date().timeIntervalSince(started) >= 1.5)
                // One attempt can miss on a loaded host (busybox nc's 2 s bound), so retry: a cut of
                // m3-m2 would fail every attempt.
                let reachableFromThirdMachine = try Testbed.eventually(timeoutSeconds: 10) {
                    try connects(from: 3, to: address, in: bed)
                }
                #expect(reachableFromThirdMachine, "the cut of m1-m2 also cut m3-m2")

                try bed.heal(1, 2)
                // 30 s only bounds "never heals": one full run on a loaded host needed more than 10 s
                // (cause not found yet), so a failure now says what the machines saw.
                let reachableAfterHeal = try Testbed.eventually(timeoutSeconds: 30) {
                    try connects(from: 1, to: address, in: bed)
                }
                if !reachableAfterHeal {
                    let diagnostics = [
                        ["exec", "1", "nft", "list", "ruleset"], ["exec", "2", "nft", "list", "ruleset"],
                        ["exec", "2", "systemctl", "status", "--no-pager", "flotilla-listen.service"],
                        ["exec", "2", "ss", "-tan"], ["exec", "1", "ss", "-tan"],
                    ].map { arguments in
                        (try? bed.run(arguments).trimmedOutput) ?? "\(arguments.joined(separator: " ")) failed"
                    }
                    Issue.record("m1 cannot reach m2 after heal:\n\(diagnostics.joined(separator: "\n---\n"))")
                }
            }
        }
    }

    /// Writes a docker unit to /run/systemd/system, starts it with the machine's systemctl, sees
    /// the container run, stops it, and sees the container gone.
    private func checkDockerUnit(on machine: Int, of bed: Testbed) throws {
        let container = "flotilla-it-m\(machine)"
        let unit = "\(container).service"
        // docker run exits 143 when the container's init forwards systemd's SIGTERM, which is a
        // clean stop for this unit. The `-` prefix: there is usually nothing to remove.
        let unitText = """
            [Unit]
            Description=integration test container \(container)
            After=docker.service
            Requires=docker.service

            [Service]
            ExecStartPre=-/usr/bin/docker rm -f \(container)
            ExecStart=/usr/bin/docker run --rm --init --name \(container) flotilla/busybox sleep 1000
            SuccessExitStatus=143

            """
        try bed.exec(
            machine, "sh", "-c", "printf '%s' \"$1\" > /run/systemd/system/\(unit)", "sh", unitText)
        try bed.exec(machine, "systemctl", "daemon-reload")
        try bed.exec(machine, "systemctl", "start", unit)

        #expect(try activeState(of: unit, on: machine, in: bed) == "active", "m\(machine)")
        let running = try Testbed.eventually(timeoutSeconds: 15) {
            try containers(on: machine, in: bed, all: false).contains(container)
        }
        #expect(running, "container \(container) not running on m\(machine)")

        try bed.exec(machine, "systemctl", "stop", unit)
        #expect(try activeState(of: unit, on: machine, in: bed) == "inactive", "m\(machine)")
        let gone = try Testbed.eventually(timeoutSeconds: 15) {
            try !containers(on: machine, in: bed, all: true).contains(container)
        }
        #expect(gone, "container \(container) still exists on m\(machine) after stop")
    }

    private func activeState(of unit: String, on machine: Int, in bed: Testbed) throws -> String {
        try bed.exec(machine, "systemctl", "show", "--property=ActiveState", "--value", unit)
    }

    private func containers(on machine: Int, in bed: Testbed, all: Bool) throws -> [String] {
        let arguments = ["/usr/bin/docker", "ps", "--format", "{{.Names}}"] + (all ? ["--all"] : [])
        return try bed.run(["exec", String(machine)] + arguments).trimmedOutput
            .split(separator: "\n").map(String.init)
    }

    /// One TCP connection attempt from `machine` with a 2 s bound; true if the listener answered.
    private func connects(from machine: Int, to address: String, in bed: Testbed) throws -> Bool {
        let output = try bed.execAllowingFailure(
            machine, "busybox", "nc", "-w", "2", address, String(Self.listenerPort))
        return output.succeeded && output.standardOutput.contains("hello")
    }
}
