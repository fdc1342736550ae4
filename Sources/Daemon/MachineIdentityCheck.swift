import Logging
import Membership
import MembershipShell

/// Two machines with one machine ID (a cloned disk image without `systemd-machine-id-setup`)
/// would both hold that machine's lease and run its units. Two signals tell (`IdentityGuard`
/// in the Agent module decides on them): gossip, where the membership core pings any other
/// address that announces our ID, naming that ID, and only a live machine with the same ID acks
/// (`MembershipInstance.identityClash`); and the lease, which every voter grants to one holder
/// address at a time (`LeaseLedger.renew`). The process that holds the lease keeps running and
/// logs the clash; the other refuses to go on and exits 78. When both start at the same moment
/// one of them still runs (the one a majority of voters granted first), never both and, with
/// the voters up, never neither.
enum MachineIdentityCheck {
    /// The exit status of a refused start. Units/flotillad.service lists it in
    /// RestartPreventExitStatus=, so systemd does not restart into the same clash every second.
    static let refusedExitStatus: Int32 = 78  // EX_CONFIG

    /// How long start-up waits for a seed to answer the join before going on unchecked (seeds
    /// that are not up yet: the first machines of a new cluster), then for identity probes (each
    /// lasts `MembershipInstance.identityProbeSends` probe timeouts, 2 s on a LAN; this bounds
    /// the wait should gossip keep starting new ones). A clash known before the agent starts
    /// lets a newcomer be refused before it has fetched anything.
    static let joinWaitMilliseconds = 3_000
    static let probeWaitMilliseconds = 4_000
    static let pollMilliseconds = 20

    /// Returns once the join has settled: the clashing address, if gossip found one.
    static func settleJoin(membership: MembershipShell) async throws -> MemberAddress? {
        let clock = ContinuousClock()
        let joinDeadline = clock.now + .milliseconds(joinWaitMilliseconds)
        while clock.now < joinDeadline, !(try await membership.hasJoined()) {
            try await Task.sleep(for: .milliseconds(pollMilliseconds))
        }
        let probeDeadline = clock.now + .milliseconds(probeWaitMilliseconds)
        while clock.now < probeDeadline, try await membership.identityProbesInFlight() {
            try await Task.sleep(for: .milliseconds(pollMilliseconds))
        }
        return try await membership.identityClash()
    }

    /// Hands gossip's clash to the agent once it appears (at start-up or later).
    static func watchClash(membership: MembershipShell, agent: MachineAgent) async {
        while !Task.isCancelled {
            if let other = try? await membership.identityClash() {
                await agent.noteIdentityClash(with: other.description)
                return
            }
            try? await Task.sleep(for: .seconds(1))
        }
    }
}

struct DuplicateMachineID: Error, CustomStringConvertible {
    let machineID: String
    let otherAddress: String

    var description: String {
        "machine ID \(machineID) (from /etc/machine-id) is already used by the live member at \(otherAddress), which holds its lease: "
            + "two machines share one ID, usually a cloned disk image. Refusing to run, so that no unit runs twice. "
            + "Give this machine its own ID (rm /etc/machine-id && systemd-machine-id-setup), then start flotillad again."
    }
}
