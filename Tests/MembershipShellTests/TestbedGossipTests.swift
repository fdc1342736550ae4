import Foundation
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// flotilla-gossip on real machines (Contrib/testbed): each machine runs it as a unit of its own
/// systemd, with its own /etc/machine-id, on its own network namespace, with memberlist's LAN
/// defaults. The figures it prints are what Contrib/bench/RESULTS.md records.
@Suite(
    "flotilla-gossip on the test bed",
    .serialized,
    .disabled(if: GossipTestbed.missingHostCapability != nil,
              Comment(rawValue: "this host lacks \(GossipTestbed.missingHostCapability ?? "nothing")"))
)
struct TestbedGossipTests {
    static let machineCount = 5
    static let port = 7946

    @Test func aKilledMachineIsSeenDeadAndAnIsolatedOneRejoinsAtAHigherIncarnation() async throws {
        let binary = try #require(Self.binaryInMachine(), "flotilla-gossip is not built beside the test binary")
        // Blocking waits on a thread of our own; the figures come from the machines' own
        // timestamps, so a starved test thread cannot skew them.
        let figures = try await onDedicatedThread { try GossipScenario(binary: binary).run() }
        print("""
            membership on the test bed (\(Self.machineCount) machines, LAN defaults): \
            kill -> all see dead: \(figures.killToAllDeadMilliseconds) ms \
            (per machine \(figures.killToDeadPerMachineMilliseconds)); \
            isolate -> all see dead: \(figures.isolateToAllDeadMilliseconds) ms; \
            rejoin -> all see alive: \(figures.rejoinToAllAliveMilliseconds) ms, \
            \(figures.rejoinSinceStartMilliseconds) ms after the first member started \
            (incarnation \(figures.incarnationWhenDead) -> \(figures.incarnationAfterRejoin))
            """)
        #expect(figures.incarnationAfterRejoin > figures.incarnationWhenDead)
    }

    /// The flotilla-gossip built beside this test binary, as a path inside the machines (the
    /// repository is bound read-only at /opt/flotilla-src).
    static func binaryInMachine() -> String? {
        var buffer = [UInt8](repeating: 0, count: 4_096)
        let count = buffer.withUnsafeMutableBufferPointer { pointer in
            pointer.withMemoryRebound(to: CChar.self) { readlink("/proc/self/exe", $0.baseAddress!, $0.count - 1) }
        }
        guard count > 0 else { return nil }
        let executable = URL(fileURLWithPath: String(decoding: buffer[0..<count], as: UTF8.self))
        let binary = executable.deletingLastPathComponent().appendingPathComponent("flotilla-gossip").path
        let root = GossipTestbed.repositoryRoot.standardizedFileURL.path + "/"
        guard FileManager.default.isExecutableFile(atPath: binary), binary.hasPrefix(root) else { return nil }
        return GossipTestbed.repositoryInMachine + "/" + binary.dropFirst(root.count)
    }
}

struct GossipFigures: Sendable {
    var killToAllDeadMilliseconds: Int64
    var killToDeadPerMachineMilliseconds: [Int64]
    var isolateToAllDeadMilliseconds: Int64
    var rejoinToAllAliveMilliseconds: Int64
    /// When the last observer saw the rejoin, counted from the first `started` line (before the
    /// core's rejoin rules, a slow rejoin landed at the first reconnect, 30 s after start).
    var rejoinSinceStartMilliseconds: Int64
    var incarnationWhenDead: UInt64
    var incarnationAfterRejoin: UInt64
}

struct ScenarioFailure: Error, CustomStringConvertible {
    var description: String
}

/// One line of flotilla-gossip's output: `<status> <id> <host:port> inc=<n> from=<s> t=<ms>`.
struct GossipLine: Equatable {
    var status: String
    var id: String
    var incarnation: UInt64
    var wallClockMilliseconds: Int64

    init?(_ line: Substring) {
        let fields = line.split(separator: " ")
        guard fields.count >= 6, ["alive", "suspect", "dead", "left"].contains(fields[0]),
              let incarnation = fields.first(where: { $0.hasPrefix("inc=") }).flatMap({ UInt64($0.dropFirst(4)) }),
              let time = fields.last(where: { $0.hasPrefix("t=") }).flatMap({ Int64($0.dropFirst(2)) }) else { return nil }
        status = String(fields[0])
        id = String(fields[1])
        self.incarnation = incarnation
        wallClockMilliseconds = time
    }
}

/// The scenario, run on a thread of its own: boot, start flotilla-gossip everywhere, kill one
/// machine, isolate and rejoin another, and read every verdict from the machines' journals.
struct GossipScenario {
    let binary: String
    let machines = 1...TestbedGossipTests.machineCount
    /// Generous: they only catch hangs (LAN defaults: suspicion up to 6 × 4 × log10(5) s, and a
    /// dead member is contacted again every 30 s).
    let convergenceTimeoutSeconds: Double = 180

    func run() throws -> GossipFigures {
        try GossipTestbed.with(prefix: "gossip", machines: machines.count) { bed in
            let addresses = try machines.map { try bed.address($0) }
            let ids = try machines.map { try bed.exec($0, ["cat", "/etc/machine-id"]) }
            for machine in machines {
                var command = ["systemd-run", "--unit=gossip", binary,
                               "--bind", "\(addresses[machine - 1]):\(TestbedGossipTests.port)",
                               "--metadata", "machine=m\(machine)"]
                if machine > 1 { command += ["--join", "\(addresses[0]):\(TestbedGossipTests.port)"] }
                try bed.exec(machine, command)
            }
            try waitUntil("every machine sees every other alive", bed: bed, observers: Array(machines)) { machine, latest in
                machines.allSatisfy { $0 == machine || latest[ids[$0 - 1]]?.status == "alive" }
            }
            let startedAt = try startTime(bed, 1)

            // A crash: machine 5 dies at once, its sockets with it.
            let crashed = machines.count
            try bed.run(["kill", String(crashed)])
            let killedAt = wallClockMilliseconds()
            let killVerdicts = try firstLines(bed: bed, observers: Array(1..<crashed), about: ids[crashed - 1],
                                              status: "dead", after: killedAt - 1_000)

            // A partition: machine 4 is unplugged, declared dead, plugged back in.
            let isolated = crashed - 1
            let observers = Array(1..<isolated)
            try bed.run(["isolate", String(isolated)])
            let isolatedAt = wallClockMilliseconds()
            let isolateVerdicts = try firstLines(bed: bed, observers: observers, about: ids[isolated - 1],
                                                 status: "dead", after: isolatedAt - 1_000)
            let incarnationWhenDead = isolateVerdicts.map(\.incarnation).max() ?? 0
            try bed.run(["rejoin", String(isolated)])
            let rejoinedAt = wallClockMilliseconds()
            let rejoinVerdicts = try firstLines(bed: bed, observers: observers, about: ids[isolated - 1],
                                                status: "alive", after: rejoinedAt) { $0.incarnation > incarnationWhenDead }
            try waitUntil("the rejoined machine sees the others alive again", bed: bed, observers: [isolated]) { _, latest in
                observers.allSatisfy { latest[ids[$0 - 1]]?.status == "alive" }
            }
            return GossipFigures(
                killToAllDeadMilliseconds: (killVerdicts.map(\.wallClockMilliseconds).max() ?? 0) - killedAt,
                killToDeadPerMachineMilliseconds: killVerdicts.map { $0.wallClockMilliseconds - killedAt },
                isolateToAllDeadMilliseconds: (isolateVerdicts.map(\.wallClockMilliseconds).max() ?? 0) - isolatedAt,
                rejoinToAllAliveMilliseconds: (rejoinVerdicts.map(\.wallClockMilliseconds).max() ?? 0) - rejoinedAt,
                rejoinSinceStartMilliseconds: (rejoinVerdicts.map(\.wallClockMilliseconds).max() ?? 0) - startedAt,
                incarnationWhenDead: incarnationWhenDead,
                incarnationAfterRejoin: rejoinVerdicts.map(\.incarnation).min() ?? 0)
        }
    }

    /// The wall-clock stamp of the machine's `started` line.
    func startTime(_ bed: GossipTestbed, _ machine: Int) throws -> Int64 {
        let output = try bed.exec(machine, ["journalctl", "-u", "gossip", "-o", "cat", "--no-pager"])
        let started = output.split(separator: "\n").first { $0.hasPrefix("started ") }
        guard let stamp = started?.split(separator: " ").last(where: { $0.hasPrefix("t=") }).flatMap({ Int64($0.dropFirst(2)) }) else {
            throw ScenarioFailure(description: "m\(machine) printed no started line")
        }
        return stamp
    }

    func lines(_ bed: GossipTestbed, _ machine: Int) throws -> [GossipLine] {
        try bed.exec(machine, ["journalctl", "-u", "gossip", "-o", "cat", "--no-pager"])
            .split(separator: "\n").compactMap(GossipLine.init)
    }

    /// The end of each machine's flotilla-gossip journal, for a failure's description.
    func journals(_ bed: GossipTestbed, _ observers: [Int]) -> String {
        observers.map { machine in
            let text = (try? bed.exec(machine, ["journalctl", "-u", "gossip", "-o", "cat", "--no-pager", "-n", "30"])) ?? "?"
            return "== m\(machine)\n\(text)"
        }.joined(separator: "\n")
    }

    /// Polls the observers' journals until `condition` holds for each, given the latest line per member.
    func waitUntil(_ what: String, bed: GossipTestbed, observers: [Int],
                   _ condition: (Int, [String: GossipLine]) -> Bool) throws {
        let held = try GossipTestbed.eventually(timeoutSeconds: convergenceTimeoutSeconds) {
            try observers.allSatisfy { machine in
                var latest: [String: GossipLine] = [:]
                for line in try lines(bed, machine) { latest[line.id] = line }
                return condition(machine, latest)
            }
        }
        guard held else {
            throw ScenarioFailure(description: "timed out waiting until \(what)\n" + journals(bed, observers))
        }
    }

    /// The first line each observer printed about `id` with `status` after `after` (unix ms).
    func firstLines(bed: GossipTestbed, observers: [Int], about id: String, status: String, after: Int64,
                    where include: (GossipLine) -> Bool = { _ in true }) throws -> [GossipLine] {
        var found: [Int: GossipLine] = [:]
        let held = try GossipTestbed.eventually(timeoutSeconds: convergenceTimeoutSeconds) {
            for machine in observers where found[machine] == nil {
                found[machine] = try lines(bed, machine).first {
                    $0.id == id && $0.status == status && $0.wallClockMilliseconds >= after && include($0)
                }
            }
            return found.count == observers.count
        }
        guard held else {
            throw ScenarioFailure(description: "timed out: only machines \(found.keys.sorted()) saw \(id) \(status)\n"
                                  + journals(bed, observers))
        }
        return observers.compactMap { found[$0] }
    }
}
