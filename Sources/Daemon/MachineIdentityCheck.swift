import Logging
import Membership
import MembershipShell

/// Two machines with one machine ID (a cloned disk image without `systemd-machine-id-setup`)
/// would both hold that machine's lease and run its units. Gossip tells: the membership core pings
/// any other address that announces our ID, naming that ID, and only a live machine with the same
/// ID acks (`MembershipInstance.identityClash`). The newcomer refuses to start; the machine that
/// was running first keeps running and logs the clash.
enum MachineIdentityCheck {
    /// The exit status of a refused start. Units/flotillad.service lists it in
    /// RestartPreventExitStatus=, so systemd does not restart into the same clash every second.
    static let refusedExitStatus: Int32 = 78  // EX_CONFIG

    /// How long start-up waits for a seed to answer the join before going on unchecked (seeds
    /// that are not up yet: the first machines of a new cluster), then for identity probes (each
    /// lasts `MembershipInstance.identityProbeSends` probe timeouts, 2 s on a LAN; this bounds
    /// the wait should gossip keep starting new ones).
    static let joinWaitMilliseconds = 3_000
    static let probeWaitMilliseconds = 4_000
    static let pollMilliseconds = 20

    /// Returns once the join has settled with no clash; throws `DuplicateMachineID` otherwise.
    static func refuseDuplicate(membership: MembershipShell, machineID: String) async throws {
        let clock = ContinuousClock()
        let joinDeadline = clock.now + .milliseconds(joinWaitMilliseconds)
        while clock.now < joinDeadline, !(try await membership.hasJoined()) {
            try await Task.sleep(for: .milliseconds(pollMilliseconds))
        }
        let probeDeadline = clock.now + .milliseconds(probeWaitMilliseconds)
        while clock.now < probeDeadline, try await membership.identityProbesInFlight() {
            try await Task.sleep(for: .milliseconds(pollMilliseconds))
        }
        if let other = try await membership.identityClash() {
            throw DuplicateMachineID(machineID: machineID, otherAddress: other.description)
        }
    }

    /// For the machine that was running first: logs the clash once, when it appears.
    static func reportLaterClash(membership: MembershipShell, machineID: String, logger: Logger) async {
        while !Task.isCancelled {
            if let other = try? await membership.identityClash() {
                logger.critical("another machine uses this machine's ID", metadata: [
                    "machine": "\(machineID)", "other": "\(other)",
                    "fix": "on the other machine: rm /etc/machine-id && systemd-machine-id-setup, then restart flotillad",
                ])
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
        "machine ID \(machineID) (from /etc/machine-id) is already used by the live member at \(otherAddress): "
            + "two machines share one ID, usually a cloned disk image. Refusing to start, so that no unit runs twice. "
            + "Give this machine its own ID (rm /etc/machine-id && systemd-machine-id-setup), then start flotillad again."
    }
}
