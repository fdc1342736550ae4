import Raft

/// The knobs of one simulated run, all drawn from its seed (so `SIM_SEED` alone replays a run).
struct SimulationParameters: CustomStringConvertible {
    var seed: UInt64
    var nodeCount: Int
    var spareNodeCount = 2
    var momentsPerTick = 4
    var faultMoments = 2400
    var livenessMomentsMax = 3000
    var syncDelayMoments: ClosedRange<Int> = 0...3
    var dropProbability: Double
    var duplicateProbability: Double
    var longDelayProbability: Double
    var crashProbability: Double
    /// Crashes aimed at the leader, restarted quickly: the leader churn of figure 8.
    var leaderCrashProbability: Double
    var partitionProbability: Double
    /// Short flapping partitions cause frequent elections with divergent uncommitted tails.
    var partitionDurationMoments: ClosedRange<Int>
    var membershipChangeProbability: Double
    var transferProbability: Double
    var readProbability: Double
    var proposeProbability = 0.08
    var clientCount: Int
    /// The application snapshots once this many entries were applied since the last snapshot.
    var snapshotEveryEntries: UInt64
    /// Small batches split a new leader's catch-up, which opens figure 8's window.
    var appendEntriesBatchBytesMax: Int
    var checkQuorumAndPreVote: Bool
    /// A node's clock jumps: a burst of ticks at once (the clock leapt forward, or a paused
    /// process catching up) or no ticks for a while (the clock stepped back, or the process was
    /// paused). Safety must not depend on it; ticks only pace elections and heartbeats.
    var clockJumpProbability: Double
    /// The chance that a crash tears the tail of the node's write-ahead log (see
    /// `Simulation.tearTail`) instead of leaving every completed write in place.
    var tornTailProbability: Double

    init(seed: UInt64) {
        var random = SplitMix64(seed: seed ^ 0x5EED_0F_F107_111A)
        self.seed = seed
        nodeCount = [3, 5, 7][Int(seed % 3)]
        dropProbability = random.pick([0, 0.01, 0.05, 0.15])!
        duplicateProbability = random.pick([0, 0.02, 0.1])!
        longDelayProbability = random.pick([0, 0.01, 0.05])!
        crashProbability = random.pick([0, 0.001, 0.003])!
        leaderCrashProbability = random.pick([0, 0.002, 0.008, 0.02])!
        partitionProbability = random.pick([0, 0.003, 0.01, 0.03])!
        partitionDurationMoments = random.pick([10...60, 40...400])!
        transferProbability = random.pick([0, 0.001, 0.003])!
        readProbability = random.pick([0, 0.01])!
        snapshotEveryEntries = random.pick([4, 16, 1_000_000])!
        appendEntriesBatchBytesMax = random.pick([128, 256, 1024])!
        clientCount = random.pick([3, 12])!
        checkQuorumAndPreVote = !random.chance(0.15)
        // Without check-quorum, a removed server that never learns of its removal disrupts the
        // cluster forever (thesis §4.2.3); that is the documented reason for the lease rule.
        membershipChangeProbability = checkQuorumAndPreVote ? random.pick([0, 0.002, 0.006])! : 0
        // Drawn last, so the knobs above keep the values they had for a seed before it existed.
        clockJumpProbability = random.pick([0, 0.002, 0.01])!
        // Drawn after the clock jumps, for the same reason.
        tornTailProbability = random.pick([0, 0.5, 1])!
    }

    var description: String {
        "nodes=\(nodeCount) clients=\(clientCount) drop=\(dropProbability) dup=\(duplicateProbability) longDelay=\(longDelayProbability) "
            + "crash=\(crashProbability) leaderCrash=\(leaderCrashProbability) partition=\(partitionProbability)x\(partitionDurationMoments) membership=\(membershipChangeProbability) "
            + "transfer=\(transferProbability) read=\(readProbability) snapshotEvery=\(snapshotEveryEntries) batchBytes=\(appendEntriesBatchBytesMax) "
            + "checkQuorumAndPreVote=\(checkQuorumAndPreVote) clockJump=\(clockJumpProbability) tornTail=\(tornTailProbability)"
    }
}

struct SimulationFailure: Error, CustomStringConvertible {
    var seed: UInt64
    var moment: Int
    var reason: String
    var parameters: String
    var transcript: [String]

    var description: String {
        """
        simulation seed \(seed) failed at moment \(moment): \(reason)
        parameters: \(parameters)
        replay: SIM_SEED=\(seed) swift test --filter randomisedClustersStaySafeAndConverge
        last events:
        \(transcript.joined(separator: "\n"))
        """
    }
}

struct SimulationStatistics {
    var moments = 0
    var messagesDelivered = 0
    var leadersElected = 0
    var crashes = 0
    /// Readies whose messages left before their writes were durable (thesis §10.2.1).
    var earlySends = 0
    var clockJumps = 0
    /// Crashes that tore the tail of the log (see `Simulation.tearTail`), and among them those
    /// that lost a commit index the node had acted on, or kept a batch whose sync had not returned.
    var tornTails = 0
    var commitIndexesLost = 0
    var inFlightBatchesKept = 0
    var snapshotsInstalled = 0
    var membershipChanges = 0
    var acknowledgedProposals = 0
    var readsServed = 0
    /// Moments from healing to convergence (the worst one, when statistics are combined).
    var convergenceMoments = 0
}

/// One simulated cluster, run in a single thread from one seed.
///
/// Time advances in moments; every `momentsPerTick` moments each live node gets `tick()`. A node
/// takes a `Ready`, its writes stay volatile for a random sync delay, and only when the sync
/// completes does the disk keep them, the messages leave and the entries apply. A crash loses
/// the node's memory, its unsynced writes and its unsent messages; some crashes also tear the
/// tail of its log as the real WAL's recovery would find it (`tearTail`).
///
/// After every moment the checkers verify the safety properties of figure 3: election safety,
/// leader append-only, log matching, leader completeness and state machine safety, plus the
/// client-visible ones (every acknowledged command applied exactly once, linearizable reads).
/// After the fault phase, everything heals and the cluster must converge within a bound.
struct Simulation {
    enum Phase { case faults, liveness }

    let parameters: SimulationParameters
    let configuration: RaftConfiguration
    var random: SplitMix64
    var now = 0
    var phase = Phase.faults
    var nodes: [SimulatedNode] = []
    var network = SimulatedNetwork()
    var clients: [SimulatedClient] = []
    var partitionHealsAt: Int?
    var statistics = SimulationStatistics()

    // Checker state.
    var leaderByTerm: [UInt64: NodeID] = [:]
    var loggedEntries: [IndexAndTerm: (payload: Entry.Payload, previousTerm: UInt64)] = [:]
    var committedEntries: [UInt64: Entry] = [:]
    var highestCommittedIndex: UInt64 = 0
    var acknowledged: [ClientStamp] = []
    var acknowledgedSet: Set<ClientStamp> = []
    var pendingReads: [UInt64: (node: NodeID, acknowledgedCount: Int)] = [:]
    var nextReadID: UInt64 = 1
    /// Ids ever proposed as learners (never reused, as in etcd).
    var usedSpareIDs: Set<NodeID> = []

    var transcript = Transcript()

    struct IndexAndTerm: Hashable {
        var index: UInt64
        var term: UInt64
    }

    init(parameters: SimulationParameters) {
        self.parameters = parameters
        self.random = SplitMix64(seed: parameters.seed)
        self.configuration = try! RaftConfiguration(
            electionTimeoutTicks: 10, heartbeatIntervalTicks: 2,
            preVoteEnabled: parameters.checkQuorumAndPreVote, checkQuorumEnabled: parameters.checkQuorumAndPreVote,
            appendEntriesBatchBytesMax: parameters.appendEntriesBatchBytesMax, inflightMessagesMax: 4, inflightBytesMax: 2048,
            uncommittedEntriesBytesMax: 16 * 1024, entryBytesMax: 96,
            committedEntriesBatchBytesMax: 512, snapshotChunkBytesMax: 256, snapshotBytesMax: 1024 * 1024,
            pendingReadsMax: 8, learnerPromotionLagEntriesMax: 8)
        network.dropProbability = parameters.dropProbability
        network.duplicateProbability = parameters.duplicateProbability
        network.longDelayProbability = parameters.longDelayProbability
        let founders = (1...parameters.nodeCount).map { NodeID(UInt64($0)) }
        for number in 1...(parameters.nodeCount + parameters.spareNodeCount) {
            let id = NodeID(UInt64(number))
            let initial = number <= parameters.nodeCount ? PersistentState.bootstrap(voters: founders) : .joining()
            let node = SimulatedNode(id: id, disk: SimulatedDisk(initial: initial))
            node.start(configuration: configuration, seed: random.next())
            nodes.append(node)
        }
        for number in 1...parameters.clientCount {
            clients.append(SimulatedClient(clientID: UInt64(number)))
        }
    }

    func fail(_ reason: String) -> SimulationFailure {
        SimulationFailure(seed: parameters.seed, moment: now, reason: reason, parameters: parameters.description,
                          transcript: transcript.lines())
    }

    /// Runs the fault phase, then the liveness phase; throws the first violation.
    mutating func run() throws(SimulationFailure) -> SimulationStatistics {
        while now < parameters.faultMoments {
            try runMoment()
        }
        heal()
        let healedAt = now
        let deadline = now + parameters.livenessMomentsMax
        while true {
            try runMoment()
            if try converged() { break }
            if now >= deadline {
                throw fail("no convergence within \(parameters.livenessMomentsMax) moments after healing: \(convergenceReport())")
            }
        }
        statistics.convergenceMoments = now - healedAt
        statistics.moments = now
        statistics.acknowledgedProposals = acknowledged.count
        return statistics
    }

    mutating func runMoment() throws(SimulationFailure) {
        if now % parameters.momentsPerTick == 0 {
            for index in nodes.indices where nodes[index].raft != nil && now >= nodes[index].ticksStalledUntil {
                nodes[index].raft!.tick()
            }
        }
        for message in network.takeDue(now: now) {
            let target = Int(message.to.rawValue) - 1
            guard nodes[target].raft != nil else { continue }
            transcript.record(now, .deliver(message))
            statistics.messagesDelivered += 1
            nodes[target].raft!.step(message)
        }
        if phase == .faults { injectFaults() }
        for index in nodes.indices where nodes[index].raft == nil && (nodes[index].restartAt ?? Int.max) <= now {
            try restart(index)
        }
        actClients()
        try processIO()
        try serveReads()
        try compact()
        try checkLeaders()
        now += 1
    }

    // MARK: IO

    mutating func processIO() throws(SimulationFailure) {
        for index in nodes.indices {
            while nodes[index].raft != nil {
                if let pending = nodes[index].pendingIO {
                    guard pending.completesAt <= now else { break }
                    try completeIO(index)
                    continue
                }
                // ready() in place: reading hasReady through the optional would copy the node.
                guard let ready = nodes[index].raft!.ready() else { break }
                try checkReady(index, ready)
                transcript.record(now, .ready(nodes[index].id, ready))
                // A leader's replication may leave before its own write completes (thesis
                // §10.2.1): send it now, so a crash during the sync exercises that path.
                let sendsEarly = ready.messagesMaySendBeforePersisting(durableHardState: nodes[index].disk.hardState)
                if sendsEarly {
                    for message in ready.messages { network.send(message, now: now, random: &random) }
                    statistics.earlySends += 1
                }
                nodes[index].pendingIO = (ready, now + random.inRange(parameters.syncDelayMoments), sendsEarly)
            }
        }
    }

    mutating func completeIO(_ index: Int) throws(SimulationFailure) {
        let ready = nodes[index].pendingIO!.ready
        let sentEarly = nodes[index].pendingIO!.sentEarly
        nodes[index].pendingIO = nil
        nodes[index].disk.persist(ready)
        if !sentEarly {
            for message in ready.messages { network.send(message, now: now, random: &random) }
        }
        if let snapshot = ready.snapshot {
            try checkSnapshot(snapshot, on: nodes[index].id)
            nodes[index].stateMachine = SimulatedStateMachine(snapshot: snapshot)
            statistics.snapshotsInstalled += 1
        }
        for entry in ready.committedEntries {
            try checkCommitted(entry, on: nodes[index].id)
            guard entry.index == nodes[index].stateMachine!.appliedIndex + 1 else {
                throw fail("\(nodes[index].id) handed entry \(entry.index) to apply after \(nodes[index].stateMachine!.appliedIndex)")
            }
            if let stamp = nodes[index].stateMachine!.apply(entry) { acknowledge(stamp) }
        }
        nodes[index].readsToServe += ready.readStates
        nodes[index].raft!.advance(ready)
    }

    mutating func acknowledge(_ stamp: ClientStamp) {
        guard acknowledgedSet.insert(stamp).inserted else { return }
        acknowledged.append(stamp)
        let client = Int(stamp.clientID) - 1
        if clients[client].inProgress && clients[client].sequence == stamp.sequence {
            clients[client].inProgress = false
            clients[client].nextAttemptAt = now + 1
        }
    }

    mutating func compact() throws(SimulationFailure) {
        for index in nodes.indices {
            guard let raft = nodes[index].raft, nodes[index].pendingIO == nil,
                  let machine = nodes[index].stateMachine,
                  machine.appliedIndex >= raft.snapshotMetadata.index + parameters.snapshotEveryEntries
            else { continue }
            do {
                let snapshot = try nodes[index].raft!.createSnapshot(at: machine.appliedIndex, data: machine.encoded)
                nodes[index].disk.compact(to: snapshot)
                transcript.record(now, .snapshot(nodes[index].id, snapshot.metadata.index))
            } catch {
                throw fail("createSnapshot on \(nodes[index].id) failed: \(error)")
            }
        }
    }

    // MARK: Faults

    mutating func injectFaults() {
        if let healsAt = partitionHealsAt, healsAt <= now {
            network.blocked = []
            partitionHealsAt = nil
            transcript.record(now, .note("partition healed"))
        }
        if partitionHealsAt == nil && random.chance(parameters.partitionProbability) { partition() }
        if random.chance(parameters.crashProbability) {
            let alive = nodes.indices.filter { nodes[$0].raft != nil }
            if let victim = random.pick(alive) { crash(victim, restartAfter: 20...300) }
        }
        if random.chance(parameters.leaderCrashProbability), let leader = currentLeaderIndex() {
            crash(leader, restartAfter: 4...60)
        }
        if random.chance(parameters.membershipChangeProbability) { changeMembership() }
        if random.chance(parameters.clockJumpProbability) { jumpClock() }
        if random.chance(parameters.transferProbability), let leader = currentLeaderIndex() {
            let voters = nodes[leader].raft!.membership.voters.filter { $0 != nodes[leader].id }
            if let target = random.pick(voters) {
                let result = nodes[leader].raft!.transferLeadership(to: target)
                transcript.record(now, .note("\(nodes[leader].id) transferLeadership(to: \(target)) -> \(result)"))
            }
        }
    }

    /// Moves one live node's clock: forward by up to three election timeouts of ticks at once,
    /// or stalls it for up to two election timeouts.
    mutating func jumpClock() {
        let alive = nodes.indices.filter { nodes[$0].raft != nil }
        guard let index = random.pick(alive) else { return }
        let timeoutTicks = configuration.electionTimeoutTicks
        if random.chance(0.5) {
            let ticks = random.inRange(1...(3 * timeoutTicks))
            for _ in 0..<ticks { nodes[index].raft!.tick() }
            transcript.record(now, .note("clock of \(nodes[index].id) jumps forward \(ticks) ticks"))
        } else {
            let ticks = random.inRange(1...(2 * timeoutTicks))
            nodes[index].ticksStalledUntil = now + ticks * parameters.momentsPerTick
            transcript.record(now, .note("clock of \(nodes[index].id) stalls for \(ticks) ticks"))
        }
        statistics.clockJumps += 1
    }

    mutating func partition() {
        let ids = nodes.map(\.id)
        var isolated: [NodeID] = []
        var description = ""
        switch random.below(4) {
        case 0:
            guard let leader = currentLeaderIndex() else { return }
            isolated = [nodes[leader].id]
            description = "leader \(nodes[leader].id) isolated"
        case 1, 2:
            let size = random.inRange(1...max(1, parameters.nodeCount / 2))
            var shuffled = ids
            shuffled.shuffle(using: &random)
            isolated = Array(shuffled.prefix(size)).sorted()
            description = "symmetric split \(isolated) | rest"
        default:
            // Asymmetric: the victim can send but hears nothing (or the reverse).
            let victim = random.pick(ids)!
            let deaf = random.chance(0.5)
            for other in ids where other != victim {
                network.blocked.insert(deaf ? .init(from: other, to: victim) : .init(from: victim, to: other))
            }
            partitionHealsAt = now + random.inRange(parameters.partitionDurationMoments)
            transcript.record(now, .note("asymmetric: \(victim) \(deaf ? "cannot hear" : "cannot speak")"))
            return
        }
        for inside in isolated {
            for outside in ids where !isolated.contains(outside) {
                network.blocked.insert(.init(from: inside, to: outside))
                network.blocked.insert(.init(from: outside, to: inside))
            }
        }
        partitionHealsAt = now + random.inRange(parameters.partitionDurationMoments)
        transcript.record(now, .note(description))
    }

    mutating func crash(_ index: Int, restartAfter delay: ClosedRange<Int>) {
        if random.chance(parameters.tornTailProbability) { tearTail(index) }
        nodes[index].crash()
        nodes[index].restartAt = now + random.inRange(delay)
        statistics.crashes += 1
        transcript.record(now, .note("crash \(nodes[index].id) (restart at \(nodes[index].restartAt!))"))
    }

    /// Disk corruption of the tail, as the real `WriteAheadLog` can present it after a crash.
    ///
    /// What a crash can tear is the unsynced suffix of the log: the commit-only hard-state
    /// records written without a sync (see `SimulatedDisk`), then the batch whose sync had not
    /// returned, if any. The kernel writes pages back on its own, so any prefix of that suffix may
    /// have reached the disk; the WAL's recovery finds a record cut short or a batch without its
    /// last record after it and truncates the file there (`WriteAheadLog.open`). This keeps a
    /// random prefix: possibly none of the commit-only records (the restarted node's commit index
    /// falls back below entries it had applied and acknowledged), possibly all of them and the
    /// in-flight batch too (a write that reached the disk although its sync never returned).
    ///
    /// Never torn: a record whose sync returned. Those are the votes, terms and entries this node
    /// vouched for in messages; a disk that loses them breaks Raft's failure model (figure 2:
    /// "updated on stable storage before responding to RPCs"), and the WAL could not tell such a
    /// tail from a torn one. Recovery of the real WAL only ever cuts one torn batch or the
    /// unsynced records before it, and the node has promised nothing about either.
    ///
    /// Assumed: the kernel writes back a file's dirty pages such that a crash leaves a prefix of
    /// the unsynced writes. A hole followed by later data is not modelled; the real WAL refuses to
    /// open such a log (`StorageError.corruptRecord`) rather than repair it.
    mutating func tearTail(_ index: Int) {
        let disk = nodes[index].disk
        let unsynced = disk.unsyncedCommitIndexes.count
        let inFlight = nodes[index].pendingIO?.ready
        let kept = random.inRange(0...(unsynced + (inFlight == nil ? 0 : 1)))
        statistics.tornTails += 1
        if kept > unsynced, let inFlight {
            nodes[index].disk.persist(inFlight)
            statistics.inFlightBatchesKept += 1
            transcript.record(now, .note("torn tail of \(nodes[index].id): the in-flight batch reached the disk (\(inFlight.brief))"))
            return
        }
        nodes[index].disk.cutUnsyncedRecords(keeping: kept)
        let lostCommitIndex = disk.hardState.commitIndex
        if nodes[index].disk.hardState.commitIndex < lostCommitIndex { statistics.commitIndexesLost += 1 }
        transcript.record(now, .note("torn tail of \(nodes[index].id): \(unsynced - kept) of \(unsynced) unsynced commit records cut, commit index \(lostCommitIndex) -> \(nodes[index].disk.hardState.commitIndex)\(inFlight == nil ? "" : ", in-flight batch lost")"))
    }

    mutating func restart(_ index: Int) throws(SimulationFailure) {
        do {
            try nodes[index].restart(configuration: configuration, seed: random.next())
        } catch {
            throw fail("\(nodes[index].id) cannot restart from its disk: \(error)")
        }
        transcript.record(now, .note("restart \(nodes[index].id) from disk (snapshot \(nodes[index].disk.snapshot.metadata.index), \(nodes[index].disk.entries.count) entries, \(nodes[index].disk.hardState))"))
    }

    mutating func changeMembership() {
        guard let leader = currentLeaderIndex() else { return }
        let membership = nodes[leader].raft!.membership
        var options: [MembershipChange] = []
        if let spare = nodes.map(\.id).first(where: { !membership.contains($0) && !usedSpareIDs.contains($0)
            && $0.rawValue > UInt64(parameters.nodeCount) }) {
            options.append(.addLearner(spare))
        }
        options += membership.learners.map { .promoteLearner($0) }
        if membership.voters.count > 3 { options += membership.voters.map { .removeNode($0) } }
        guard let change = random.pick(options) else { return }
        let result = nodes[leader].raft!.proposeMembershipChange(change)
        if case .addLearner(let id) = change, case .accepted = result { usedSpareIDs.insert(id) }
        if case .accepted = result { statistics.membershipChanges += 1 }
        transcript.record(now, .note("\(nodes[leader].id) proposeMembershipChange(\(change)) -> \(result)"))
    }

    /// The live leader with the highest term, if any.
    func currentLeaderIndex() -> Int? {
        nodes.indices.filter { nodes[$0].raft?.role == .leader }.max { nodes[$0].raft!.term < nodes[$1].raft!.term }
    }

    mutating func heal() {
        phase = .liveness
        network.blocked = []
        partitionHealsAt = nil
        network.dropProbability = 0
        network.duplicateProbability = 0
        network.longDelayProbability = 0
        for index in nodes.indices where nodes[index].raft == nil { nodes[index].restartAt = now }
        transcript.record(now, .note("heal: liveness phase begins"))
    }

    // MARK: Clients

    mutating func actClients() {
        for number in clients.indices {
            var client = clients[number]
            defer { clients[number] = client }
            guard client.nextAttemptAt <= now else { continue }
            if !client.inProgress {
                guard phase == .faults, random.chance(parameters.proposeProbability) else {
                    if phase == .faults && random.chance(parameters.readProbability) { startRead(guess: client.leaderGuess) }
                    continue
                }
                client.sequence += 1
                client.inProgress = true
            }
            let target = client.leaderGuess ?? nodes[random.below(nodes.count)].id
            let index = Int(target.rawValue) - 1
            guard nodes[index].raft != nil else {
                client.leaderGuess = nil
                client.nextAttemptAt = now + 4
                continue
            }
            let stamp = ClientStamp(clientID: client.clientID, sequence: client.sequence)
            var data = withUnsafeBytes(of: stamp.clientID.littleEndian, Array.init)
                + withUnsafeBytes(of: stamp.sequence.littleEndian, Array.init)
            data += [UInt8](repeating: 0xAB, count: random.below(40))
            let result = nodes[index].raft!.propose(data, stamp: stamp)
            transcript.record(now, .propose(stamp, target, result))
            switch result {
            case .accepted:
                client.leaderGuess = target
                // Retry (same sequence) if not applied within 40 ticks: the entry may be lost.
                client.nextAttemptAt = now + 40 * parameters.momentsPerTick
            case .notLeader(let leader):
                client.leaderGuess = leader
                client.nextAttemptAt = now + (leader == nil ? 8 : 1)
            case .dropped:
                client.nextAttemptAt = now + 8
            }
        }
    }

    mutating func startRead(guess: NodeID?) {
        guard let target = guess, let raft = nodes[Int(target.rawValue) - 1].raft, raft.role == .leader else { return }
        let readID = nextReadID
        nextReadID += 1
        let result = nodes[Int(target.rawValue) - 1].raft!.readIndex(requestID: readID)
        if result == .pending { pendingReads[readID] = (target, acknowledged.count) }
        transcript.record(now, .note("read \(readID) on \(target) -> \(result)"))
    }

    /// Thesis §6.4: a read served at or after its read index reflects every write acknowledged
    /// before the read began.
    mutating func serveReads() throws(SimulationFailure) {
        for index in nodes.indices where !nodes[index].readsToServe.isEmpty {
            guard let machine = nodes[index].stateMachine else { continue }
            while let read = nodes[index].readsToServe.first, machine.appliedIndex >= read.index {
                nodes[index].readsToServe.removeFirst()
                guard let pending = pendingReads.removeValue(forKey: read.requestID) else {
                    throw fail("read state for unknown request \(read.requestID) on \(nodes[index].id)")
                }
                for stamp in acknowledged.prefix(pending.acknowledgedCount) where !machine.appliedSet.contains(stamp) {
                    throw fail("stale read \(read.requestID) on \(nodes[index].id) at index \(read.index): misses \(stamp) acknowledged before the read")
                }
                statistics.readsServed += 1
            }
        }
    }
}

/// A class, not a struct: the simulation touches its nodes constantly, and copying a whole
/// `RaftNode` on each access made debug builds several times slower.
final class SimulatedNode {
    let id: NodeID
    var raft: RaftNode?
    var disk: SimulatedDisk
    var stateMachine: SimulatedStateMachine?
    /// The Ready whose writes are in flight; `sentEarly` when its messages already left.
    var pendingIO: (ready: Ready, completesAt: Int, sentEarly: Bool)?
    var restartAt: Int?
    var readsToServe: [ReadState] = []
    /// While leader: (term, highest index handed out for persistence in that term).
    var leaderAppendMark: (term: UInt64, lastIndex: UInt64)?
    var lastSeenRole: (role: Role, term: UInt64)?
    /// No ticks before this moment (a stalled clock; see `Simulation.jumpClock`).
    var ticksStalledUntil = 0

    init(id: NodeID, disk: SimulatedDisk) {
        self.id = id
        self.disk = disk
    }

    func start(configuration: RaftConfiguration, seed: UInt64) {
        try! restart(configuration: configuration, seed: seed)
    }

    func restart(configuration: RaftConfiguration, seed: UInt64) throws(PersistentStateError) {
        raft = try RaftNode(id: id, configuration: configuration, restoring: disk.persistentState, randomSeed: seed)
        stateMachine = SimulatedStateMachine(snapshot: disk.snapshot)
        restartAt = nil
    }

    func crash() {
        raft = nil
        stateMachine = nil
        pendingIO = nil
        readsToServe = []
        leaderAppendMark = nil
        lastSeenRole = nil
    }
}

struct SimulatedClient {
    let clientID: UInt64
    /// The command in progress, or the last one acknowledged.
    var sequence: UInt64 = 0
    var inProgress = false
    var nextAttemptAt = 0
    var leaderGuess: NodeID?
}

/// The last events of a run, rendered only when it fails.
struct Transcript {
    enum Event {
        case deliver(Message)
        case ready(NodeID, Ready)
        case snapshot(NodeID, UInt64)
        case role(NodeID, Role, UInt64)
        case propose(ClientStamp, NodeID, ProposeResult)
        case note(String)
    }

    static let capacity = 400
    private var events: [(moment: Int, event: Event)] = []
    private var head = 0

    mutating func record(_ moment: Int, _ event: @autoclosure () -> Event) {
        if events.count < Self.capacity {
            events.append((moment, event()))
        } else {
            events[head] = (moment, event())
            head = (head + 1) % Self.capacity
        }
    }

    func lines(last count: Int = 80) -> [String] {
        let ordered = Array(events[head...] + events[..<head])
        return ordered.suffix(count).map { moment, event in
            let text: String
            switch event {
            case .deliver(let message): text = "deliver \(message.brief)"
            case .ready(let id, let ready): text = "ready \(id): \(ready.brief)"
            case .snapshot(let id, let index): text = "\(id) compacted through \(index)"
            case .role(let id, let role, let term): text = "\(id) is \(role) in term \(term)"
            case .propose(let stamp, let target, let result):
                text = "client \(stamp.clientID) seq \(stamp.sequence) -> \(target): \(result)"
            case .note(let note): text = note
            }
            return "  [\(moment)] \(text)"
        }
    }
}

extension Message {
    var brief: String {
        let body: String
        switch payload {
        case .appendEntries(let request):
            body = "append prev=(\(request.prevLogIndex),t\(request.prevLogTerm)) entries=\(request.entries.map { "\($0.index)@t\($0.term)" }) commit=\(request.leaderCommitIndex)"
        case .installSnapshot(let chunk):
            body = "snapshot@\(chunk.metadata.index) offset=\(chunk.offset) bytes=\(chunk.data.count)/\(chunk.totalBytes)"
        default:
            body = "\(payload)"
        }
        return "\(from)->\(to) t\(term) \(body)"
    }
}

extension Ready {
    var brief: String {
        var parts: [String] = []
        if let hardState { parts.append("hard=(t\(hardState.term) vote=\(hardState.votedFor.map(\.description) ?? "-") commit=\(hardState.commitIndex))") }
        if let snapshot { parts.append("snapshot=\(snapshot.metadata.index)@t\(snapshot.metadata.term)") }
        if let first = entries.first { parts.append("entries=\(first.index)...\(entries.last!.index)") }
        if !committedEntries.isEmpty { parts.append("apply=\(committedEntries.first!.index)...\(committedEntries.last!.index)") }
        if !messages.isEmpty { parts.append("send=\(messages.count)") }
        if !readStates.isEmpty { parts.append("reads=\(readStates.map(\.requestID))") }
        return parts.joined(separator: " ")
    }
}
