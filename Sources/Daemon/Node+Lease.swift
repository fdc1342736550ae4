import Agent
import Client
import FleetAPI
import HTTPAPI
import NIOCore
import Registry

/// The voter's and the leader's sides of the machines' leases (the Agent documentation's Lease
/// article has the protocol and its argument).
///
/// Every peer answers renewals from its own ledger, as a voter of its Raft configuration or
/// with `notGranted`; renewals are never forwarded, so they need no leader. The leader polls
/// every voter's durable withholds each renewal interval and revokes a lease that a majority
/// withheld: the `revokeLease` command unplaces the machine's units, and the scheduling round
/// it triggers places them elsewhere.
extension Node {
    /// This peer's voters as IPs, sorted, whether this peer is one of them, and whether it
    /// knows a leader. A voter whose address is not known yet makes the configuration unknown
    /// (no voters, not a voter): a list with a voter missing would make a smaller majority.
    func leaseConfiguration() async -> (voters: [String], isVoter: Bool, hasLeader: Bool) {
        guard let voter, let status = await voter.replica.status() else { return ([], false, false) }
        let ips = status.membership.voters.compactMap(ip(of:))
        guard ips.count == status.membership.voters.count, Set(ips).count == ips.count else { return ([], false, false) }
        return (ips.sorted(), status.membership.voters.contains(voter.nodeID) && status.failure == nil, status.leaderID != nil)
    }

    func renewLease(_ request: LeaseRenewalRequest) async throws(APIError) -> LeaseRenewalAnswer {
        guard let machine = try? MachineID(request.machineID) else {
            throw .badRequest("invalid machine ID \(request.machineID.debugDescription)")
        }
        guard let registry else { throw .unavailable("this peer keeps no registry") }
        let raft = await leaseConfiguration()
        ledger.setVoter(raft.isVoter, nowMilliseconds: Self.nowMilliseconds())
        let state = registry.current
        let answer = ledger.renew(machine: machine, epoch: request.epoch, registryEpoch: state.leaseEpoch(of: machine),
                                  voters: raft.voters, holder: request.holder, nowMilliseconds: Self.nowMilliseconds())
        // The holder's renewal says which schedule it has carried out (HandoffGate): a unit
        // held for this machine to stop it may go through now.
        if case .granted = answer, let version = request.scheduleVersion {
            acknowledgeSchedule(machine: machine, version: version)
        }
        return answer.wire(voter: configuration.publicIP, registryVersion: state.version)
    }

    func leaseWithholdsReport() -> LeaseWithholdsReport {
        let withholds = ledger.durableWithholds
        return LeaseWithholdsReport(voter: configuration.publicIP, withholds: withholds.keys.sorted().map {
            .init(machineID: $0.rawValue, epoch: withholds[$0]!)
        }, noSpace: noSpace.withLock { $0.isRaised })
    }

    /// On the leader: revokes the lease at the machine's request (it is shutting down and has
    /// stopped its units). Elsewhere the caller forwards.
    func releaseLeaseLocally(_ request: LeaseReleaseRequest) async throws(APIError) {
        guard let voter, let machine = try? MachineID(request.machineID) else {
            throw .badRequest("invalid machine ID \(request.machineID.debugDescription)")
        }
        do {
            let result = try await voter.propose(RegistryCommand(.revokeLease(machine, epoch: request.epoch)))
            logger.notice("lease released by its machine", metadata: ["machine": "\(machine)", "epoch": "\(request.epoch)", "result": "\(result)"])
        } catch {
            throw .unavailable("the release could not be committed: \(error)")
        }
    }

    /// Every peer, every 100 ms: tells the ledger whether this peer is a voter and lets it
    /// withhold the machines that went silent (written to disk before they are reported).
    func ledgerLoop() async {
        guard let registry else { return }
        var round = 0
        while !Task.isCancelled {
            let raft = await leaseConfiguration()
            let now = Self.nowMilliseconds()
            ledger.setVoter(raft.isVoter, nowMilliseconds: now)
            ledger.tick(nowMilliseconds: now, hasLeader: raft.hasLeader, registry: registry.current)
            if round % 10 == 0 { observeDataDirectorySpace() }
            round &+= 1
            try? await Task.sleep(for: .milliseconds(100))
        }
    }

    /// Once a second on every peer that keeps a registry: the data directory's free space, for
    /// this peer's NOSPACE alarm (reported to the leader with the withholds).
    func observeDataDirectorySpace() {
        guard let free = NoSpaceAlarmState.freeBytes(at: configuration.dataDirectory) else { return }
        let (before, after) = noSpace.withLock { state in
            let before = state.isRaised
            state.observe(freeBytes: free)
            return (before, state.isRaised)
        }
        guard before != after else { return }
        if after {
            logger.error("the data directory is short of free space: NOSPACE alarm raised; the cluster refuses writes that add data until space is freed",
                         metadata: ["directory": "\(configuration.dataDirectory)", "freeBytes": "\(free)", "reserveBytes": "\(configuration.dataDirectoryReserveBytes)"])
        } else {
            logger.notice("the data directory has free space again: NOSPACE alarm cleared",
                          metadata: ["directory": "\(configuration.dataDirectory)", "freeBytes": "\(free)"])
        }
    }

    /// The leader, every renewal interval: collects the voters' durable withholds and revokes
    /// the leases a majority of its configuration withheld at the machine's current epoch. The
    /// same reports carry each voter's NOSPACE state, which it replicates (`NoSpaceAlarms`).
    func revocationLoop() async {
        let interval = configuration.agentRenewIntervalMilliseconds
        while !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(interval))
            guard let voter, let registry, await leadership().isLeader else { continue }
            let raft = await leaseConfiguration()
            var reports: [VoterName: [MachineID: UInt64]] = [:]
            reports[configuration.publicIP] = ledger.durableWithholds
            var spaceObserved: [MachineID: Bool] = [:]
            if let own = try? MachineID(machineID) { spaceObserved[own] = noSpace.withLock { $0.isRaised } }
            let others = raft.voters.filter { $0 != self.configuration.publicIP }
            let timeout = TimeAmount.milliseconds(min(1_000, interval * 2))
            await withTaskGroup(of: (String, LeaseWithholdsReport?).self) { group in
                for ip in others {
                    group.addTask {
                        (ip, try? await self.client(ip: ip, port: self.peerPort(of: ip)).leaseWithholds(timeout: timeout))
                    }
                }
                for await (ip, report) in group {
                    reports[ip] = report.map(Self.withholds)
                    // The machine is the one membership shows at the address asked, not what the
                    // answer names: a voter speaks for its own disk only.
                    if let raised = report?.noSpace, let machine = self.machines.first(where: { $0.publicIP == ip })?.id {
                        spaceObserved[machine] = raised
                    }
                }
            }
            let state = registry.current
            let voterMachines = Set(machines.filter { raft.voters.contains($0.publicIP) }.map(\.id))
            for change in NoSpaceAlarms.changes(raised: state.noSpaceAlarms, observed: spaceObserved, voters: voterMachines) {
                do {
                    let result = try await voter.propose(RegistryCommand(.setNoSpaceAlarm(change.machine, raised: change.raised)))
                    logger.notice(change.raised ? "NOSPACE alarm raised for a voter" : "NOSPACE alarm cleared for a voter",
                                  metadata: ["machine": "\(change.machine)", "result": "\(result)"])
                } catch {
                    logger.notice("a NOSPACE alarm change failed; the next round tries again", metadata: ["machine": "\(change.machine)", "error": "\(error)"])
                }
            }
            let now = Self.nowMilliseconds()
            let decisions = LeaseRevocation.decide(
                reports: reports, voters: raft.voters, epochOf: state.leaseEpoch(of:),
                isRenewing: { self.ledger.isRenewing($0, epoch: state.leaseEpoch(of: $0), nowMilliseconds: now) })
            for entry in decisions.revoke {
                await propose(.revokeLease(entry.machine, epoch: entry.epoch), voter: voter,
                              "lease revoked: a majority of the voters heard nothing from the machine for the expiry time", entry)
            }
            for entry in decisions.advance {
                await propose(.advanceLease(entry.machine, epoch: entry.epoch), voter: voter,
                              "lease advanced: a voter had withheld it while the machine kept renewing", entry)
            }
        }
    }

    private func propose(_ operation: RegistryOperation, voter: Voter, _ message: String, _ entry: LeaseRevocation.MachineEpoch) async {
        do {
            let result = try await voter.propose(RegistryCommand(operation))
            logger.notice("\(message)", metadata: ["machine": "\(entry.machine)", "epoch": "\(entry.epoch)", "result": "\(result)"])
        } catch {
            logger.notice("a lease decision failed; the next round tries again", metadata: ["machine": "\(entry.machine)", "error": "\(error)"])
        }
    }

    /// A report's withholds, dropping entries that do not parse (a newer or broken peer).
    static func withholds(_ report: LeaseWithholdsReport) -> [MachineID: UInt64] {
        var result: [MachineID: UInt64] = [:]
        for entry in report.withholds.prefix(LeaseLedgerStore.withholdsMax) {
            if let machine = try? MachineID(entry.machineID) { result[machine] = entry.epoch }
        }
        return result
    }
}
