import ClusterCertificates
import Logging
import Membership
import Raft
import RaftReplica
import Registry
import Transport

/// Replacing dead voters (Nomad's autopilot, Raft's single-server changes, thesis §4.1/§4.2.1).
///
/// The leader checks once a second. A voter whose machine membership has seen dead (or gone)
/// for `voterReplaceAfter` is replaced in three committed steps, one change at a time:
/// 1. the healthiest candidate (an alive agent, lowest machine ID first) is added as a learner;
///    it receives a snapshot and the log without counting for quorum;
/// 2. once it has caught up, it is promoted to voter (the core refuses earlier);
/// 3. then the dead voter is removed.
/// The voter count never drops below what it was, so fault tolerance is restored, not traded:
/// a 3-voter cluster that lost one voter survives the loss of a second after the replacement.
/// A cluster without a healthy agent keeps its dead voter (removing it would not help quorum).
extension Node {
    static let voterReplaceAfter: Duration = .seconds(5)

    func autopilotLoop() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(1))
            await autopilotStep()
        }
    }

    func autopilotStep() async {
        guard let voter else { return }
        let leadership = await leadership()
        guard leadership.isLeader, let status = leadership.status else {
            voterDownSinceReset()
            return
        }
        let membership = status.membership
        // Step 2: a learner that caught up becomes a voter.
        for learner in membership.learners.sorted() {
            do {
                try await voter.replica.promote(learner)
                logger.notice("autopilot: learner promoted to voter", metadata: ["node": "\(learner)", "ip": "\(ip(of: learner) ?? "?")"])
                return
            } catch {
                logger.debug("autopilot: learner not promoted yet", metadata: ["node": "\(learner)", "error": "\(error)"])
                return
            }
        }
        let dead = deadVoters(membership: membership, localID: voter.nodeID)
        guard let victim = dead.first else { return }
        // Step 3: with the replacement in place (more voters than the founding count minus the
        // dead), remove the dead one.
        let liveVoters = membership.voters.count - dead.count
        if liveVoters >= foundingVoterCount {
            do {
                try await voter.replica.removeVoter(victim)
                voterDownSinceForget(victim)
                logger.notice("autopilot: dead voter removed", metadata: ["node": "\(victim)", "ip": "\(ip(of: victim) ?? "?")"])
            } catch {
                logger.notice("autopilot: removing the dead voter failed; retrying", metadata: ["error": "\(error)"])
            }
            return
        }
        // Step 1: add the best candidate as a learner.
        let members = Set(membership.voters).union(membership.learners)
        let candidates = machines.filter { view in
            view.status == .alive && view.raftPort > 0
                && !members.contains(NodeIdentity.nodeID(ip: view.publicIP, raftPort: view.raftPort))
        }.sorted { $0.id < $1.id }
        guard let candidate = await firstProvenServer(candidates) else {
            logger.debug("autopilot: a voter is dead and no alive agent can replace it", metadata: ["node": "\(victim)"])
            return
        }
        let id = NodeIdentity.nodeID(ip: candidate.publicIP, raftPort: candidate.raftPort)
        do {
            try await voter.replica.addLearner(id, address: PeerAddress(host: candidate.publicIP, port: candidate.raftPort))
            logger.notice("autopilot: replacing a dead voter; learner added",
                          metadata: ["dead": "\(victim)", "learner": "\(id)", "machine": "\(candidate.id)"])
        } catch {
            logger.notice("autopilot: adding the learner failed; retrying", metadata: ["error": "\(error)"])
        }
    }

    var foundingVoterCount: Int { configuration.effectiveVoters.count }

    /// The first candidate whose Raft listener proves, with a certificate of the cluster's CA,
    /// that it is a server of that machine at that address (Nomad's `server.<region>.nomad`
    /// rule): gossip only says what a machine claims. An agent's certificate would be added as a
    /// learner that no one ever sends to, holding the replacement up for good. Without peer TLS
    /// nothing can be proved and the first candidate is taken.
    func firstProvenServer(_ candidates: [MachineView]) async -> MachineView? {
        guard let peerTLS else { return candidates.first }
        for candidate in candidates.prefix(Self.autopilotProbesPerStepMax) {
            let identity = await IdentityProbe.identity(at: PeerAddress(host: candidate.publicIP, port: candidate.raftPort), contexts: peerTLS,
                                                        timeout: .milliseconds(500), group: ioGroup)
            if let identity, identity.role == .server, identity.machineID == candidate.id.rawValue,
               identity.ipAddresses.contains(candidate.publicIP) {
                return candidate
            }
            logger.notice("autopilot: a candidate is not a server of the cluster; passed over",
                          metadata: ["machine": "\(candidate.id)", "ip": "\(candidate.publicIP)",
                                     "certificate": "\(identity.map { "\($0)" } ?? "none proved")"])
        }
        return nil
    }

    /// Candidates probed in one autopilot step (a second): bounds the step's length.
    static let autopilotProbesPerStepMax = 4

    /// Voters (other than this leader) whose machine has been dead, left or unknown to
    /// membership for `voterReplaceAfter`, oldest first.
    func deadVoters(membership: Membership, localID: NodeID) -> [NodeID] {
        let now = ContinuousClock.now
        let views = machines
        var statusByNode: [NodeID: MemberStatus] = [:]
        for view in views where view.raftPort > 0 {
            statusByNode[NodeIdentity.nodeID(ip: view.publicIP, raftPort: view.raftPort)] = view.status
        }
        var result: [(NodeID, ContinuousClock.Instant)] = []
        voterDownSinceUpdate { downSince in
            for id in membership.voters where id != localID {
                let isDown = !(statusByNode[id]?.isActive ?? false)
                if !isDown {
                    downSince[id] = nil
                    continue
                }
                let since = downSince[id] ?? now
                downSince[id] = since
                if now - since >= Self.voterReplaceAfter { result.append((id, since)) }
            }
            for id in downSince.keys where !membership.voters.contains(id) { downSince[id] = nil }
        }
        return result.sorted { $0.1 < $1.1 }.map(\.0)
    }
}
