import Foundation
import Testing
import TestSupport

/// `consistency=local` is the asked machine's own view, on an agent as on a voter.
@Suite(
    "local reads on the test bed",
    .enabled(if: FlotillaCluster.missingCapability == nil,
             Comment(rawValue: "this host lacks \(FlotillaCluster.missingCapability ?? "nothing")"))
)
struct LocalReadTests {
    /// An agent outside the Raft group used to forward a local machine list to the leader; with
    /// the leader's gossip cut, it then reported the leader's view (the leader alive, everyone
    /// else dead) for as long as the cut lasted, and the lease tests' gossip-cut check failed
    /// whenever it asked an agent.
    @Test func anAgentAnswersALocalMachineListFromItsOwnMembershipView() async throws {
        try await onOwnThread {
            try FlotillaCluster.with(machines: 4, tag: "lread") { cluster in
                let bed = cluster.bed
                let leader = try cluster.leaderMachine()
                let agent = 4
                let table = "inet flotilla-gossip-cut"
                try bed.exec(leader, "nft", "add table \(table); "
                    + "add chain \(table) input { type filter hook input priority 0; }; "
                    + "add chain \(table) output { type filter hook output priority 0; }; "
                    + "add rule \(table) input meta l4proto { tcp, udp } th dport 7946 drop; "
                    + "add rule \(table) output meta l4proto { tcp, udp } th dport 7946 drop")
                struct Machines: Decodable { struct Machine: Decodable { var primaryIP: String; var state: String }; var machines: [Machine] }
                func localView() -> [String: String]? {
                    guard let listing = try? bed.execAllowingFailure(agent, "curl", "-sf", "--unix-socket", "/var/run/flotilla.sock",
                                                                     "http://localhost/flotilla/v1/machines?consistency=local"),
                          listing.succeeded,
                          let machines = try? JSONDecoder().decode(Machines.self, from: Data(listing.standardOutput.utf8)) else { return nil }
                    return Dictionary(machines.machines.map { ($0.primaryIP, $0.state) }, uniquingKeysWith: { first, _ in first })
                }
                let leaderAddress = cluster.addresses[leader - 1]
                let seenDead = Testbed.eventually(timeoutSeconds: 30, intervalSeconds: 0.5) { localView()?[leaderAddress] == "dead" }
                let view = localView()
                try bed.exec(leader, "nft", "delete table \(table)")
                #expect(seenDead, "m\(agent)'s local view of the cut leader m\(leader): \(view.map { "\($0)" } ?? "no answer")")
                // Its own view: itself and the voters it still reaches are alive.
                for machine in (1...4).filter({ $0 != leader }) {
                    #expect(view?[cluster.addresses[machine - 1]] == "alive", "m\(machine) in m\(agent)'s view: \(view.map { "\($0)" } ?? "-")")
                }
            }
        }
    }
}
