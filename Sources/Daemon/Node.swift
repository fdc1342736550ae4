import ClusterCertificates
import Agent
import Client
import FleetAPI
import Foundation
import HTTPAPI
import Logging
import Membership
import MembershipShell
import NIOCore
import NIOPosix
import Raft
import RaftReplica
import Registry
import Scheduling
import Locking
import Transport
import SystemdBus
import UnitFile

/// One peer: composes membership, the voter's Raft + registry (on voters), the leader's
/// scheduling and state table, and the machine's agent. The HTTP API calls into it through
/// `DaemonBackend`.
///
/// Who answers what: the leader answers every API request from its registry and state table;
/// any other peer forwards the request to the leader (voters know it from Raft; agents ask a
/// voter, which forwards again). Journal and status are answered by the unit's machine.
final class Node: Sendable {
    let configuration: DaemonConfiguration
    let machineID: String
    let logger: Logger
    let membership: MembershipShell
    let voter: Voter?
    let registry: RegistryStore?
    let manager: SystemdManager
    let stateTable = UnitStateTable()
    let events = EventLog()
    let ioGroup: any EventLoopGroup
    /// This machine's peer TLS contexts; nil in plaintext.
    let peerTLS: PeerTLS?
    /// Wakes the leader's scheduling round: registry changes, membership changes, leadership.
    let schedulingTriggers = ChangeNotifier()
    private let triggerCount = Locked<UInt64>(0)
    private let machineViews = Locked<[MachineView]>([])
    /// The last metadata membership showed for each machine: a machine that went silent keeps
    /// its units, and the scheduler still needs their constraints' view of it.
    private let lastKnownMetadata = Locked<[Registry.MachineID: [String: String]]>([:])
    /// This peer's side of the machines' leases (every peer keeps one; only voters grant).
    let ledger: LeaseLedgerStore
    /// This peer's data directory against `data_dir_reserve_bytes` (`observeDataDirectorySpace`).
    let noSpace: Locked<NoSpaceAlarmState>
    let leaseTiming: LeaseTiming
    private let unscheduledReasons = Locked<[String: String]>([:])
    /// Assignments waiting for another machine to stop the unit (see `HandoffGate`). The bound
    /// is systemd's default stop timeout (90 s) plus a little: past it a unit still reported as
    /// running elsewhere is placed anyway.
    private let handoffGate = Locked(HandoffGate(holdMillisecondsMax: 100_000))
    private let clients = Locked<[String: FlotillaClient]>([:])
    private let preferredVoter = Locked<Int>(0)
    /// Whether this peer led at the last look (kept by `followMembership`, every 100 ms).
    let isLeaderNow = Locked(false)
    /// Raft node id -> public IP, from the founding voters and then from membership.
    private let raftAddressBook: Locked<[NodeID: String]>
    /// The current voters' public IPs as the last schedule told them (agents' fallback upstream).
    private let knownVoterIPs: Locked<[String]>
    /// Autopilot: when the leader first saw each voter down.
    private let voterDownSince = Locked<[NodeID: ContinuousClock.Instant]>([:])
    private let optionsCache = Locked<[UnitHash: [FleetUnitOption]]>([:])
    /// Each machine's scheduled units as of one registry version and one view of the machine:
    /// an agent's long poll that times out asks for the same schedule again, and computing it
    /// walks every unit in the registry.
    private let scheduleCache = Locked<[Registry.MachineID: (version: UInt64, machine: LiveMachine, units: [ScheduledUnit])]>([:])
    let metrics = Locked(NodeMetrics())
    private let agentBox = Locked<MachineAgent?>(nil)
    /// Set once, right after init (the agent needs the node's uplink).
    var agent: MachineAgent? {
        get { agentBox.withLock { $0 } }
    }
    func attach(agent: MachineAgent) { agentBox.withLock { $0 = agent } }
    /// The peer port's server, set once it is listening (it is started after the node): its
    /// counters go into /metrics.
    let peerServer = Locked<HTTPAPIServer?>(nil)
    let startedAt = ContinuousClock.now

    struct NodeMetrics: Sendable {
        var schedulingRounds = 0
        var schedulingCommands = 0
        var schedulingRejections = 0
        var lastSchedulingMicroseconds: Int64 = 0
        var forwardedRequests = 0
        var forwardFailures = 0
        /// Requests the peer port refused, by status (0: the TLS handshake).
        var peerRequestsRefused: [Int: Int] = [:]
        /// User API requests refused for their ACL token, by status (401, 403).
        var aclRefusals: [Int: Int] = [:]
        /// Writes refused by `WriteQuota` on this leader: under a NOSPACE alarm, or past a quota.
        var writesRefusedNoSpace = 0
        var writesRefusedQuota = 0
    }

    init(configuration: DaemonConfiguration, machineID: String, logger: Logger, membership: MembershipShell, voter: Voter?,
         registry: RegistryStore?, manager: SystemdManager, ioGroup: any EventLoopGroup, ledger: LeaseLedgerStore,
         leaseTiming: LeaseTiming, peerTLS: PeerTLS?) {
        self.configuration = configuration
        self.peerTLS = peerTLS
        self.machineID = machineID
        self.logger = logger
        self.membership = membership
        self.voter = voter
        self.registry = registry
        self.manager = manager
        self.ioGroup = ioGroup
        self.ledger = ledger
        self.noSpace = Locked(NoSpaceAlarmState(reserveBytes: configuration.dataDirectoryReserveBytes))
        self.leaseTiming = leaseTiming
        self.raftAddressBook = Locked(voter?.voterAddresses ?? [:])
        self.knownVoterIPs = Locked(configuration.effectiveVoters)
    }

    func triggerScheduling() {
        triggerCount.withLock { $0 += 1 }
        schedulingTriggers.notifyAll()
    }

    // MARK: - Leadership and peers

    struct Leadership: Sendable {
        var isLeader: Bool
        var term: UInt64
        var leaderIP: String?
        /// This peer is a voter or learner in the Raft configuration (not merely running a replica).
        var isMember: Bool
        var status: ReplicaStatus?
    }

    func leadership() async -> Leadership {
        guard let voter, let status = await voter.replica.status() else {
            return Leadership(isLeader: false, term: 0, leaderIP: nil, isMember: false, status: nil)
        }
        let leaderIP = status.leaderID.flatMap { id in raftAddressBook.withLock { $0[id] } }
        let isMember = status.membership.voters.contains(voter.nodeID) || status.membership.learners.contains(voter.nodeID)
        return Leadership(isLeader: status.role == .leader && status.failure == nil, term: status.term,
                          leaderIP: leaderIP, isMember: isMember, status: status)
    }

    func ip(of node: NodeID) -> String? { raftAddressBook.withLock { $0[node] } }

    func voterDownSinceReset() { voterDownSince.withLock { $0.removeAll() } }
    func voterDownSinceForget(_ node: NodeID) { voterDownSince.withLock { _ = $0.removeValue(forKey: node) } }
    func voterDownSinceUpdate(_ body: (inout [NodeID: ContinuousClock.Instant]) -> Void) { voterDownSince.withLock { body(&$0) } }

    /// Peers answer in milliseconds or not at all (a dead leader, an election): a short timeout
    /// lets the caller move on to the next leader instead of waiting out a dead one. Long polls
    /// add their own wait to it.
    static let peerRequestTimeout: TimeAmount = .seconds(2)

    func client(ip: String, port: Int, timeout: TimeAmount = Node.peerRequestTimeout) -> FlotillaClient {
        let key = "\(ip):\(port)"
        return clients.withLock { clients in
            if let existing = clients[key] { return existing }
            // With peer TLS, every peer is reached over mutual TLS (see `peerClientTLS`).
            let tls = configuration.peerClientTLS
            let endpoint: APIEndpoint = tls == nil ? .tcp(host: ip, port: port) : .https(host: ip, port: port)
            let client = FlotillaClient(endpoint: endpoint, eventLoopGroup: ioGroup, requestTimeout: timeout, tls: tls)
            clients[key] = client
            return client
        }
    }

    func peerPort(of ip: String) -> Int {
        machineViews.withLock { views in views.first { $0.publicIP == ip }?.peerPort } ?? configuration.peerPort
    }

    /// The peer to forward a request to, or nil when this peer is the leader and answers itself.
    /// A member of the Raft group forwards to the leader it knows, and answers 503 while it knows
    /// none (the caller retries); any other peer (an agent) asks the voters in turn, which
    /// forward to the leader. So a request crosses at most two hops and never loops.
    func upstream() async throws(APIError) -> FlotillaClient? {
        let leadership = await leadership()
        if leadership.isLeader { return nil }
        if leadership.isMember {
            guard let ip = leadership.leaderIP, ip != configuration.publicIP else {
                throw .unavailable("no leader is elected at the moment; retry shortly")
            }
            return client(ip: ip, port: peerPort(of: ip))
        }
        let voters = knownVoterIPs.withLock { $0 }.filter { $0 != configuration.publicIP }
        guard !voters.isEmpty else { throw .unavailable("no leader is elected at the moment; retry shortly") }
        let index = preferredVoter.withLock { $0 } % voters.count
        return client(ip: voters[index], port: peerPort(of: voters[index]))
    }

    /// Runs `body` against the upstream peer. While no leader answers (an election after the
    /// leader died, a leader that cannot be reached) the request is retried on whichever peer
    /// leads next, for up to `forwardRetryMilliseconds`: a user's command rides out a failover
    /// instead of failing in its middle. An agent moves on to the next voter when one fails.
    func forward<T>(_ body: (FlotillaClient) async throws(ClientError) -> T) async throws(APIError) -> T {
        let deadline = ContinuousClock.now + .milliseconds(Self.forwardRetryMilliseconds)
        while true {
            let failure: APIError
            do {
                // Leadership moved here since the caller looked: return at once with a 503, so
                // that the caller (or its retry loop) runs the operation again, locally this
                // time. Retrying here would only ask `upstream()` again and again for nothing:
                // an agent stuck in that loop past its fence timeout stopped its units.
                guard let upstream = try await upstream() else { throw ForwardOutcome.becameLeader }
                metrics.withLock { $0.forwardedRequests += 1 }
                do {
                    return try await body(upstream)
                } catch {
                    metrics.withLock { $0.forwardFailures += 1 }
                    preferredVoter.withLock { $0 += 1 }
                    throw Self.apiError(error)
                }
            } catch let error as APIError {
                failure = error
            } catch ForwardOutcome.becameLeader {
                throw APIError.unavailable("this peer has just become the leader; retry")
            } catch {
                failure = .internalError("\(error)")
            }
            guard failure.status == 503, ContinuousClock.now < deadline, !Task.isCancelled else { throw failure }
            try? await Task.sleep(for: .milliseconds(100))
        }
    }

    static let forwardRetryMilliseconds = 5_000

    enum ForwardOutcome: Error { case becameLeader }

    static func apiError(_ error: ClientError) -> APIError {
        switch error {
        case .api(let status, let message): return APIError(status: status, message: message)
        case .connection(let reason): return .unavailable("the leader could not be reached: \(reason)")
        case .timeout: return .unavailable("the leader did not answer in time")
        case .invalidResponse(let reason): return .internalError("the leader's answer was invalid: \(reason)")
        }
    }

    // MARK: - Machines

    var machines: [MachineView] { machineViews.withLock { $0 } }

    /// Follows membership (and leadership) and wakes scheduling when either changes.
    func followMembership() async {
        var lastTerm: UInt64 = 0
        var lastLeader = false
        while !Task.isCancelled {
            if let members = try? await membership.members() {
                let views = members.compactMap(MachineView.init(member:)).sorted { $0.id < $1.id }
                let previous = machineViews.withLock { state -> [MachineView] in
                    defer { state = views }
                    return state
                }
                if previous != views {
                    lastKnownMetadata.withLock { known in
                        for view in views where known.count < RegistryLimits.standard.machinesMax || known[view.id] != nil {
                            known[view.id] = view.metadata
                        }
                    }
                    triggerScheduling()
                    recordMachineEvents(previous: previous, current: views)
                    await updateRaftAddresses(views)
                }
            }
            if voter != nil {
                let leadership = await leadership()
                if leadership.term != lastTerm || leadership.isLeader != lastLeader {
                    if leadership.isLeader && !lastLeader {
                        // A new leader knows no unit states: the agents resync when they see
                        // the new term in their next schedule.
                        stateTable.clear()
                        logger.notice("this peer leads", metadata: ["term": "\(leadership.term)"])
                    }
                    lastTerm = leadership.term
                    lastLeader = leadership.isLeader
                    isLeaderNow.withLock { $0 = leadership.isLeader }
                    triggerScheduling()
                }
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
    }

    /// Membership's addresses become Raft's: every peer's node id is derived from its Raft
    /// address, and the transport is told where the members of the configuration (and, on a
    /// peer outside it, the voters) listen. Idempotent: an unchanged address changes nothing.
    private func updateRaftAddresses(_ views: [MachineView]) async {
        var book: [NodeID: (ip: String, port: Int)] = [:]
        for view in views where view.raftPort > 0 {
            book[NodeIdentity.nodeID(ip: view.publicIP, raftPort: view.raftPort)] = (view.publicIP, view.raftPort)
        }
        raftAddressBook.withLock { addresses in
            for (id, entry) in book { addresses[id] = entry.ip }
        }
        guard let voter, let status = await voter.replica.status() else { return }
        var wanted = Set(status.membership.voters).union(status.membership.learners)
        for ip in knownVoterIPs.withLock({ $0 }) { wanted.insert(NodeIdentity.nodeID(ip: ip, raftPort: configuration.raftPort)) }
        wanted.remove(voter.nodeID)
        for id in wanted.sorted() {
            guard let entry = book[id] else { continue }
            voter.replica.setPeerAddress(id, PeerAddress(host: entry.ip, port: entry.port))
        }
    }

    private func recordMachineEvents(previous: [MachineView], current: [MachineView]) {
        let before = Dictionary(previous.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        var items: [(kind: FlotillaEvent.Kind, subject: String, unit: FleetUnit?, state: FleetUnitState?, machine: FlotillaMachine?)] = []
        for view in current where before[view.id] != view {
            items.append((.machine, view.id.rawValue, nil, nil, flotillaMachine(view, registry: registry?.current)))
        }
        events.append(items)
    }

    // MARK: - Scheduling (leader)

    func scheduleLoop() async {
        guard let voter, let registry else { return }
        var seen: UInt64 = 0
        while !Task.isCancelled {
            let wait = configuration.engineReconcileIntervalMilliseconds
            let seenCount = seen
            await schedulingTriggers.wait(timeoutMilliseconds: Int(wait)) { self.triggerCount.withLock { $0 } > seenCount }
            seen = triggerCount.withLock { $0 }
            guard await leadership().isLeader else { continue }
            await scheduleRound(voter: voter, registry: registry)
        }
    }

    private func scheduleRound(voter: Voter, registry: RegistryStore) async {
        let started = ContinuousClock.now
        let views = machines
        let state = registry.current
        let now = Self.nowMilliseconds()
        let isRenewing = { (machine: Registry.MachineID) in
            self.ledger.isRenewing(machine, epoch: state.leaseEpoch(of: machine), nowMilliseconds: now)
        }
        let live = MachineView.schedulingMachines(
            state: state, views: views, lastKnownMetadata: lastKnownMetadata.withLock { $0 }, isRenewing: isRenewing)
        // A machine that renews nothing and holds nothing reports nothing any more: its last
        // states would show units as running where they no longer are.
        let holding = Set(live.filter { machine in
            machine.acceptsNewUnits || state.units.values.contains { $0.machine == machine.id }
        }.map(\.id))
        for view in views where !holding.contains(view.id) {
            stateTable.forget(machineID: view.id.rawValue)
            handoffGate.withLock { $0.forget(machine: view.id) }
        }
        let plan = Scheduler.plan(registry: state, liveMachines: live, configuration: ClusterLimits.standard.scheduler)
        unscheduledReasons.withLock { reasons in
            reasons = Dictionary(plan.unscheduled.map { ($0.name.rawValue, $0.reason) }, uniquingKeysWith: { a, _ in a })
        }
        var running: [UnitName: Set<Registry.MachineID>] = [:]
        for report in stateTable.states(machineID: nil, unitName: nil) where HandoffGate.isRunning(activeState: report.systemdActiveState) {
            guard let name = try? UnitName(report.name), let machine = try? Registry.MachineID(report.machineID) else { continue }
            running[name, default: []].insert(machine)
        }
        let commands = handoffGate.withLock { $0.filter(plan.commands, registry: state, running: running, liveMachines: Set(live.map(\.id).filter(isRenewing)),
                                                       nowMilliseconds: now) }
        var rejected = 0
        for command in commands {
            do {
                if case .rejected(let why) = try await voter.propose(command) {
                    rejected += 1
                    logger.warning("scheduling command rejected; the next round recomputes", metadata: ["reason": "\(why)"])
                }
            } catch {
                logger.notice("scheduling proposal failed", metadata: ["error": "\(error)"])
                break
            }
        }
        let elapsed = ContinuousClock.now - started
        metrics.withLock {
            $0.schedulingRounds += 1
            $0.schedulingCommands += commands.count
            $0.schedulingRejections += rejected
            $0.lastSchedulingMicroseconds = elapsed.components.seconds * 1_000_000 + elapsed.components.attoseconds / 1_000_000_000_000
        }
    }

    func unscheduledReason(_ name: String) -> String? { unscheduledReasons.withLock { $0[name] } }

    /// Milliseconds on CLOCK_MONOTONIC, the clock systemd times its watchdogs with (only
    /// differences mean anything).
    static func nowMilliseconds() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return Int64(spec.tv_sec) * 1_000 + Int64(spec.tv_nsec) / 1_000_000
    }

    // MARK: - Views (leader)

    func fleetOptions(_ record: UnitRecord) -> [FleetUnitOption] {
        fleetOptions(file: record.file, hash: record.hash)
    }

    func fleetOptions(file: [UInt8], hash: UnitHash) -> [FleetUnitOption] {
        if let cached = optionsCache.withLock({ $0[hash] }) { return cached }
        let options = (try? UnitFile(parsing: file))?.fleetOptions ?? []
        optionsCache.withLock { cache in
            // Bounded: past the limit the cache starts over (every entry is cheap to rebuild).
            if cache.count >= 50_000 { cache.removeAll(keepingCapacity: true) }
            cache[hash] = options
        }
        return options
    }

    /// What the unit's machine reports, from the leader's state table. A peer that does not
    /// lead (answering a local read) has no table and says nothing rather than "inactive".
    func currentState(of record: UnitRecord) -> FleetUnitTargetState? {
        guard isLeaderNow.withLock({ $0 }) else { return nil }
        guard let machine = record.machine else { return record.options.isGlobal ? nil : .inactive }
        guard let state = stateTable.state(machineID: machine.rawValue, unitName: record.name.rawValue) else {
            return .inactive
        }
        switch state.systemdActiveState {
        case "active", "reloading", "activating", "deactivating": return .launched
        default: return state.systemdLoadState == "loaded" ? .loaded : .inactive
        }
    }

    func fleetUnit(_ record: UnitRecord) -> FleetUnit {
        FleetUnit(name: record.name.rawValue, options: fleetOptions(record), desiredState: FleetUnitTargetState(record.targetState),
                  currentState: currentState(of: record), machineID: record.machine?.rawValue)
    }

    func fleetUnit(template: TemplateRecord) -> FleetUnit {
        FleetUnit(name: template.name.rawValue, options: fleetOptions(file: template.file, hash: template.hash),
                  desiredState: .inactive, currentState: .inactive, machineID: nil)
    }

    func effectiveMetadata(_ view: MachineView, registry: RegistryState?) -> [String: String] {
        guard let registry else { return view.metadata }
        return view.liveMachine(in: registry).metadata
    }

    func flotillaMachine(_ view: MachineView, registry: RegistryState?, raftMembership: Membership? = nil) -> FlotillaMachine {
        let count = registry?.units.values.filter { $0.machine == view.id }.count ?? 0
        var role = view.role == .voter ? "voter" : "agent"
        if let raftMembership, view.raftPort > 0 {
            let id = NodeIdentity.nodeID(ip: view.publicIP, raftPort: view.raftPort)
            role = raftMembership.voters.contains(id) ? "voter" : raftMembership.learners.contains(id) ? "learner" : "agent"
        }
        return FlotillaMachine(id: view.id.rawValue, primaryIP: view.publicIP, metadata: effectiveMetadata(view, registry: registry),
                               role: role, state: view.status.description,
                               isDrained: registry?.machines[view.id]?.isDrained ?? false, unitCount: count,
                               alarms: registry?.noSpaceAlarms.contains(view.id) == true ? ["NOSPACE"] : nil)
    }

    // MARK: - Schedules (leader)

    /// The machine's schedule from this peer's own applied registry: any member of the Raft
    /// group answers (the voters' registries trail the leader's by a commit notice at most), so
    /// an agent follows its schedule through a leader change without waiting for the election.
    func localSchedule(machineID: String, afterVersion: UInt64, waitMilliseconds: Int) async throws(APIError) -> MachineSchedule {
        guard let registry else { throw .internalError("not a voter") }
        let leadership = await leadership()
        guard leadership.isMember else { throw .unavailable("this peer is not a member of the Raft group") }
        guard let id = try? MachineID(machineID) else { throw .badRequest("invalid machine ID \(machineID.debugDescription)") }
        let state = await registry.waitForVersion(after: afterVersion, timeoutMilliseconds: min(waitMilliseconds, 30_000))
        let view = machines.first { $0.id == id }
        let live = view?.liveMachine(in: state) ?? LiveMachine(id: id, metadata: [:], isDrained: state.machines[id]?.isDrained ?? false)
        let units: [ScheduledUnit]
        if let cached = scheduleCache.withLock({ $0[id] }), cached.version == state.version, cached.machine == live {
            units = cached.units
        } else {
            units = Scheduler.units(for: live, in: state).map { record in
                ScheduledUnit(name: record.name.rawValue, desiredState: FleetUnitTargetState(record.targetState), hash: record.hash.hex,
                              file: String(decoding: record.file, as: UTF8.self))
            }
            scheduleCache.withLock { cache in
                // Bounded: one entry per machine that asks; past the limit it starts over.
                if cache.count >= RegistryLimits.standard.machinesMax { cache.removeAll(keepingCapacity: true) }
                cache[id] = (state.version, live, units)
            }
        }
        let voters = (leadership.status?.membership.voters ?? []).compactMap(ip(of:)).sorted()
        return MachineSchedule(machineID: machineID, version: state.version, leaderTerm: leadership.term, units: units,
                               voters: voters.isEmpty ? nil : voters, leaseEpoch: state.leaseEpoch(of: id),
                               gossipKeys: state.gossipKeyring?.keys.map { Data($0).base64EncodedString() })
    }

    /// The voters an agent turns to, `preferred` first.
    func votersToAsk(preferred: String?) -> [String] {
        let known = knownVoterIPs.withLock { $0 }.filter { $0 != configuration.publicIP }
        guard let preferred, let index = known.firstIndex(of: preferred) else { return known }
        return Array(known[index...] + known[..<index])
    }

    /// The agent's links: its schedule from this peer's registry when it is a Raft member, else
    /// from a voter's (each in turn until one answers); renewals to the voter named; states to
    /// the leader, locally or forwarded.
    func agentUplink() -> AgentUplink {
        AgentUplink(
            fetchSchedule: { afterVersion, wait, preferred in
                try await self.agentSchedule(afterVersion: afterVersion, waitMilliseconds: wait, preferred: preferred)
            },
            sendStates: { report in
                if self.voter != nil, await self.leadership().isLeader {
                    return try self.applyStates(report)
                }
                do {
                    try await self.forward { client throws(ClientError) in try await client.reportStates(report) }
                    return true
                } catch let error as APIError where error.status == 409 {
                    return false
                }
            },
            renewLease: { voter, request in
                if voter == self.configuration.publicIP { return try await self.renewLease(request) }
                let timeout = TimeAmount.milliseconds(min(1_000, self.leaseTiming.leaseMilliseconds / 2))
                return try await self.client(ip: voter, port: self.peerPort(of: voter)).renewLease(request, timeout: timeout)
            },
            releaseLease: { request in
                if self.voter != nil, await self.leadership().isLeader {
                    try await self.releaseLeaseLocally(request)
                    return
                }
                try await self.forward { client throws(ClientError) in try await client.releaseLease(request) }
            })
    }

    /// This machine's schedule for its agent: from this peer's registry when it is a Raft member,
    /// else from the voters in turn (`preferred` first) until one answers. A method rather than
    /// the uplink's closure body: the release build's optimizer crashed (signal 11 while
    /// splitting the coroutine) on this body inlined into the closure.
    func agentSchedule(afterVersion: UInt64, waitMilliseconds wait: Int, preferred: String?) async throws -> MachineSchedule {
        if voter != nil, await leadership().isMember {
            // Rethrown as an untyped error on purpose: letting the typed `APIError` propagate
            // straight through made the release optimizer crash too (tried).
            do {
                let schedule = try await localSchedule(machineID: machineID, afterVersion: afterVersion, waitMilliseconds: wait)
                await adoptGossipKeys(schedule.gossipKeys)
                return schedule
            } catch {
                throw error as any Error
            }
        }
        var lastError: (any Error)?
        for ip in votersToAsk(preferred: preferred) {
            do {
                let schedule = try await client(ip: ip, port: peerPort(of: ip), timeout: .seconds(1))
                    .schedule(machineID: machineID, afterVersion: afterVersion, waitMilliseconds: wait)
                if let voters = schedule.voters, !voters.isEmpty { knownVoterIPs.withLock { $0 = voters } }
                await adoptGossipKeys(schedule.gossipKeys)
                return schedule
            } catch {
                lastError = error
            }
        }
        throw lastError ?? APIError.unavailable("no voter is known")
    }

    /// Applies an agent's report on the leader; false when it must resync first.
    func applyStates(_ report: StateReport) throws(APIError) -> Bool {
        switch stateTable.apply(report) {
        case .needsResync:
            return false
        case .refused(let reason):
            throw .badRequest("state report refused: \(reason)")
        case .applied(let changed, let gone):
            // A held assignment waits for exactly such a report (its unit stopped elsewhere, or
            // its old machine acted on a schedule without it).
            if let version = report.scheduleVersion, let machine = try? Registry.MachineID(report.machineID) {
                acknowledgeSchedule(machine: machine, version: version)
            }
            let held = handoffGate.withLock { $0.held }
            if !held.isEmpty, changed.contains(where: { (try? UnitName($0.name)).map(held.contains) == true })
                || gone.contains(where: { (try? UnitName($0)).map(held.contains) == true }) {
                triggerScheduling()
            }
            var items: [(kind: FlotillaEvent.Kind, subject: String, unit: FleetUnit?, state: FleetUnitState?, machine: FlotillaMachine?)] = []
            for state in changed { items.append((.state, state.name, nil, state, nil)) }
            for name in gone { items.append((.state, name, nil, nil, nil)) }
            events.append(items)
            return true
        }
    }

    /// A machine has carried out the schedule of registry `version` (from its renewals and
    /// reports): departures it settles let held assignments through at the next round.
    func acknowledgeSchedule(machine: Registry.MachineID, version: UInt64) {
        let (settled, held) = handoffGate.withLock { gate in
            (gate.acknowledge(machine: machine, scheduleVersion: version), !gate.held.isEmpty)
        }
        if settled && held { triggerScheduling() }
    }

    /// Events for registry changes (called on every voter as it applies).
    func recordRegistryChange(_ command: RegistryCommand, _ state: RegistryState) {
        var subjects: [String] = []
        var machinesChanged: [Registry.MachineID] = []
        switch command.operation {
        case .submitUnits(let list), .replaceUnitFiles(let list): subjects = list.map(\.name.rawValue)
        case .setTargetState(let names, _), .destroyUnits(let names), .unassign(let names): subjects = names.map(\.rawValue)
        case .putUnit(let submission, _): subjects = [submission.name.rawValue]
        case .assign(let assignments): subjects = assignments.map(\.unit.rawValue)
        case .setMachineMetadata(let machine, _), .drainMachine(let machine), .undrainMachine(let machine): machinesChanged = [machine]
        // The units it unplaced show in the events of their next placement.
        case .revokeLease(let machine, _), .advanceLease(let machine, _): machinesChanged = [machine]
        case .setNoSpaceAlarm(let machine, _): machinesChanged = [machine]
        // Keys and tokens never go into events (watchers are not all trusted with them);
        // machines take the ring from their schedule.
        case .setGossipKeyring, .createACLToken, .deleteACLToken: break
        }
        // The gate learns which units left which machine at which version (see HandoffGate);
        // every voter tracks it, so a new leader knows the departures before its term.
        handoffGate.withLock { gate in
            if case .revokeLease(let machine, _) = command.operation {
                gate.noteLeaseRevoked(machine, in: state)
            } else {
                gate.noteChange(of: subjects.compactMap { try? UnitName($0) }, in: state)
            }
        }
        var items: [(kind: FlotillaEvent.Kind, subject: String, unit: FleetUnit?, state: FleetUnitState?, machine: FlotillaMachine?)] = []
        for subject in subjects {
            let record = (try? UnitName(subject)).flatMap { state.units[$0] }
            items.append((.unit, subject, record.map(fleetUnit), nil, nil))
        }
        for machine in machinesChanged {
            let view = machines.first { $0.id == machine }
            items.append((.machine, machine.rawValue, nil, nil, view.map { flotillaMachine($0, registry: state) }))
        }
        events.append(items)
        triggerScheduling()
    }
}

extension FleetUnitTargetState {
    init(_ state: TargetState) {
        switch state {
        case .inactive: self = .inactive
        case .loaded: self = .loaded
        case .launched: self = .launched
        }
    }

    var targetState: TargetState {
        switch self {
        case .inactive: return .inactive
        case .loaded: return .loaded
        case .launched: return .launched
        }
    }
}
