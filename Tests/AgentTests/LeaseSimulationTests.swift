import Registry
import Testing
import TestSupport
@testable import Agent

/// The lease protocol in one thread, from a seed: one machine, 3 or 5 voters, each with its own
/// clock running up to ρ fast or slow; renewals and answers delayed, dropped, cut; voters that
/// crash (losing their ledger but not what they made durable) and come back; a machine whose
/// agent freezes (SIGSTOP) while its systemd keeps time. The leader polls the voters' durable
/// withholds and revokes by `LeaseRevocation`.
///
/// The property checked at every revocation of epoch e, at real time T: every deadline the
/// agent ever gave systemd at epoch e, read on the machine's clock and turned into real time,
/// plus Δ (systemd acting late) plus S (the units' stop), is at most T. That is "no unit runs on
/// the machine once the leader may start it elsewhere", whatever the clocks within the bound.
@Suite struct LeaseSimulationTests {
    static let seedCount = 200

    /// The seed loops are a minute of CPU in debug builds, so they run on a thread of their own
    /// (`onDedicatedThread`), not on the cooperative pool that every other suite's async tests wait on.
    @Test func noRevocationComesBeforeTheMachinesUnitsHaveStopped() async {
        let failure: String? = await onDedicatedThread(.background) {
            for seed in 1...UInt64(Self.seedCount) {
                var world = LeaseWorld(seed: seed, faults: .random)
                world.run(untilMilliseconds: 120_000)
                if let violation = world.violations.first {
                    return "seed \(seed): \(violation) (replay: LeaseWorld(seed: \(seed), faults: .random))"
                }
            }
            return nil
        }
        if let failure { Issue.record(Comment(rawValue: failure)) }
    }

    /// The same with every clock at an extreme of the bound, the machine's slow and the voters'
    /// fast: the worst case for the argument, which must still hold with nothing to spare.
    @Test func theWorstCaseClocksStillStopBeforeTheRevocation() async {
        let failures: [String] = await onDedicatedThread(.background) {
            var failures: [String] = []
            for seed in 1...UInt64(Self.seedCount) {
                var world = LeaseWorld(seed: seed, faults: .random, clocks: .worstCase)
                world.run(untilMilliseconds: 120_000)
                if let violation = world.violations.first {
                    return failures + ["seed \(seed): \(violation) (replay: LeaseWorld(seed: \(seed), faults: .random, clocks: .worstCase))"]
                }
                if world.revocations == 0 && !world.seedHadNoLongCut {
                    failures.append("seed \(seed): a long cut without any revocation")
                }
            }
            return failures
        }
        for failure in failures { Issue.record(Comment(rawValue: failure)) }
    }

    @Test func aLeadersIsolationLapsesNoLease() {
        var world = LeaseWorld(seed: 1, faults: .none)
        world.run(untilMilliseconds: 5_000)
        world.isolateVoter(0, atMilliseconds: 5_000, forMilliseconds: 20_000)
        world.run(untilMilliseconds: 30_000)
        #expect(world.lapses == 0, "lapses: \(world.lapses)")
        #expect(world.revocations == 0)
        #expect(world.violations.isEmpty)
    }

    /// Seen on the test bed: a voter cut off for longer than E withheld every machine; once back,
    /// its withholds refused them for good, and the next voter fault lapsed machines that still
    /// reached a majority of the live voters. Now the cut-off voter counts nothing while it has
    /// no leader, and any withhold left over is cleared by an advance.
    @Test func aVoterBackFromACutStopsRefusingAndASecondFaultLapsesNothing() {
        var world = LeaseWorld(seed: 5, faults: .none)
        world.run(untilMilliseconds: 5_000)
        world.isolateVoter(2, atMilliseconds: 5_000, forMilliseconds: 10_000)
        world.run(untilMilliseconds: 20_000)
        world.isolateVoter(1, atMilliseconds: 20_000, forMilliseconds: 20_000)
        world.run(untilMilliseconds: 45_000)
        #expect(world.lapses == 0, "lapses: \(world.lapses)")
        #expect(world.revocations == 0)
        #expect(world.violations.isEmpty, "\(world.violations)")
    }

    /// The leader's rule that clears a minority's withholds, on its own: a voter with no sense
    /// of being cut off (it still has a leader) withholds the machine it cannot hear.
    @Test func aMinorityWithholdIsAdvancedAndTheLeaseStaysHeld() {
        var world = LeaseWorld(seed: 6, faults: .none)
        world.run(untilMilliseconds: 5_000)
        world.cutMachineFrom(voter: 2, atMilliseconds: 5_000, forMilliseconds: 10_000)
        world.run(untilMilliseconds: 20_000)
        #expect(world.advances >= 1)
        #expect(world.lapses == 0, "lapses: \(world.lapses)")
        #expect(world.revocations == 0)
        #expect(world.violations.isEmpty, "\(world.violations)")
    }

    @Test func aCutOffMachineLapsesWithinTheLeaseAndIsRevokedAfterTheExpiry() {
        var world = LeaseWorld(seed: 2, faults: .none)
        world.run(untilMilliseconds: 5_000)
        world.cutMachine(atMilliseconds: 5_000, forMilliseconds: 30_000)
        world.run(untilMilliseconds: 40_000)
        let timing = world.timing
        let lapse = try! #require(world.firstLapseMilliseconds)
        let revocation = try! #require(world.firstRevocationMilliseconds)
        #expect(lapse <= 5_000 + timing.leaseMilliseconds + 50, "lapsed at \(lapse)")
        #expect(revocation >= 5_000 + timing.expiryMilliseconds - timing.renewalIntervalMilliseconds - 400, "revoked at \(revocation)")
        #expect(revocation <= 5_000 + timing.expiryMilliseconds + 1_000, "revoked at \(revocation)")
        #expect(world.violations.isEmpty, "\(world.violations)")
        // After the heal the machine takes the new epoch and holds its lease again.
        #expect(world.machineEpoch == 1)
        #expect(world.isHeld)
    }

    @Test func aFrozenAgentIsStoppedBySystemdBeforeItsUnitsMove() {
        var world = LeaseWorld(seed: 3, faults: .none)
        world.run(untilMilliseconds: 5_000)
        world.pauseMachine(atMilliseconds: 5_000, forMilliseconds: 30_000)
        world.run(untilMilliseconds: 60_000)
        #expect(world.revocations == 1)
        #expect(world.violations.isEmpty, "\(world.violations)")
        #expect(world.isHeld, "the thawed agent takes the new epoch and holds its lease again")
    }

    @Test func aShortFreezeKeepsTheLease() {
        var world = LeaseWorld(seed: 4, faults: .none)
        world.run(untilMilliseconds: 5_000)
        world.pauseMachine(atMilliseconds: 5_000, forMilliseconds: 1_000)
        world.run(untilMilliseconds: 20_000)
        #expect(world.lapses == 0)
        #expect(world.revocations == 0)
    }
}

struct LeaseWorld {
    enum Faults { case none, random }
    enum Clocks { case random, worstCase }

    struct Clock {
        var offset: Int64
        var ratePartsPerMillion: Int64
        func local(_ real: Int64) -> Int64 { offset + real * (1_000_000 + ratePartsPerMillion) / 1_000_000 }
        /// The first real millisecond at which this clock shows `local` or more.
        func real(_ local: Int64) -> Int64 {
            let numerator = (local - offset) * 1_000_000
            let denominator = 1_000_000 + ratePartsPerMillion
            return numerator >= 0 ? (numerator + denominator - 1) / denominator : numerator / denominator
        }
    }

    struct Voter {
        var name: VoterName
        var clock: Clock
        var ledger: LeaseLedger
        var isAlive = true
        var incarnation = 0
        var registryEpoch: UInt64 = 0
        var isPlaced = true
        var durable: [MachineID: UInt64] = [:]
        var isCut = false
        /// Only the link between this voter and the machine is cut.
        var isCutFromMachine = false
    }

    enum Event {
        case machineTick
        case renewArrives(voter: Int, round: LeaseRound)
        case answerArrives(voter: Int, round: UInt64, answer: LeaseAnswer)
        case adopt(epoch: UInt64)
        case voterTick(Int)
        case durableDone(voter: Int, incarnation: Int, withholds: [MachineID: UInt64])
        case leaderPoll
        case apply(voter: Int, epoch: UInt64, isPlaced: Bool)
        case voterCrash(Int)
        case voterRestart(Int)
        case fault
        case setMachineCut(Bool)
        case setVoterCut(Int, Bool)
        case setMachineVoterLinkCut(Int, Bool)
        case setMachinePaused(Bool)
    }

    let timing = standardTiming
    var random: SplitMix64
    let faults: Faults
    var now: Int64 = 0
    var queue = EventHeap<Event>()
    var sequence = 0
    var voters: [Voter] = []
    var machineClock: Clock
    var lease: MachineLease
    var nextRoundLocal: Int64 = 0
    var isMachineCut = false
    var isMachinePaused = false
    var pausedInbox: [Event] = []
    /// Every deadline given to systemd: (epoch, deadline on the machine's clock).
    var extensions: [(epoch: UInt64, deadline: Int64)] = []
    var latestEpoch: UInt64 = 0
    var isPlacedGlobally = true
    var violations: [String] = []
    var revocations = 0
    var advances = 0
    var lapses = 0
    var firstLapseMilliseconds: Int64?
    var firstRevocationMilliseconds: Int64?
    var seedHadNoLongCut = true

    var machineEpoch: UInt64? { lease.epoch }
    var isHeld: Bool { lease.isHeld(nowMilliseconds: machineClock.local(now)) }

    init(seed: UInt64, faults: Faults, clocks: Clocks = .random) {
        random = SplitMix64(seed: seed)
        self.faults = faults
        let rho = timing.clockDriftPartsPerMillion
        func rate(fast: Bool, random: inout SplitMix64) -> Int64 {
            switch clocks {
            case .worstCase: return fast ? rho : -rho
            case .random: return Int64.random(in: -rho...rho, using: &random)
            }
        }
        machineClock = Clock(offset: Int64.random(in: 0...1_000_000, using: &random), ratePartsPerMillion: rate(fast: false, random: &random))
        lease = MachineLease(timing: timing)
        lease.adopt(epoch: 0)
        let voterCount = faults == .random && Bool.random(using: &random) ? 5 : 3
        for index in 0..<voterCount {
            let clock = Clock(offset: Int64.random(in: 0...1_000_000, using: &random), ratePartsPerMillion: rate(fast: true, random: &random))
            var ledger = LeaseLedger(timing: timing)
            ledger.setVoter(true, nowMilliseconds: clock.local(0))
            voters.append(Voter(name: "10.0.0.\(index + 1)", clock: clock, ledger: ledger))
        }
        schedule(.machineTick, after: 0)
        for index in voters.indices { schedule(.voterTick(index), after: Int64(index) * 7) }
        schedule(.leaderPoll, after: 100)
        if faults == .random { schedule(.fault, after: Int64.random(in: 1_000...5_000, using: &random)) }
    }

    var voterNames: [VoterName] { voters.map(\.name) }

    mutating func schedule(_ event: Event, after delay: Int64) {
        sequence += 1
        queue.push(time: now + max(0, delay), sequence: sequence, event)
    }

    mutating func run(untilMilliseconds end: Int64) {
        while let time = queue.firstTime, time <= end {
            let next = queue.pop()
            now = next.time
            handle(next.event)
        }
        now = end
    }

    // MARK: Scripted faults

    mutating func isolateVoter(_ index: Int, atMilliseconds time: Int64, forMilliseconds duration: Int64) {
        schedule(.setVoterCut(index, true), after: time - now)
        schedule(.setVoterCut(index, false), after: time - now + duration)
    }

    mutating func cutMachine(atMilliseconds time: Int64, forMilliseconds duration: Int64) {
        schedule(.setMachineCut(true), after: time - now)
        schedule(.setMachineCut(false), after: time - now + duration)
    }

    mutating func cutMachineFrom(voter index: Int, atMilliseconds time: Int64, forMilliseconds duration: Int64) {
        schedule(.setMachineVoterLinkCut(index, true), after: time - now)
        schedule(.setMachineVoterLinkCut(index, false), after: time - now + duration)
    }

    mutating func pauseMachine(atMilliseconds time: Int64, forMilliseconds duration: Int64) {
        schedule(.setMachinePaused(true), after: time - now)
        schedule(.setMachinePaused(false), after: time - now + duration)
    }

    // MARK: Events

    mutating func handle(_ event: Event) {
        if isMachinePaused {
            switch event {
            case .machineTick, .answerArrives, .adopt:
                pausedInbox.append(event)
                return
            default: break
            }
        }
        switch event {
        case .machineTick:
            machineTick()
            schedule(.machineTick, after: 10)
        case .renewArrives(let index, let round):
            guard voters[index].isAlive, !isMachineCut, !voters[index].isCut, !voters[index].isCutFromMachine else { return }
            let local = voters[index].clock.local(now)
            let answer = voters[index].ledger.renew(machine: machineM, epoch: round.epoch, registryEpoch: voters[index].registryEpoch,
                                                    voters: voterNames, nowMilliseconds: local)
            send(.answerArrives(voter: index, round: round.number, answer: answer))
        case .answerArrives(let index, let round, let answer):
            guard !isMachineCut, !voters[index].isCutFromMachine else { return }
            record(lease.received(answer, from: voters[index].name, round: round, nowMilliseconds: machineClock.local(now)))
            // The agent's long poll brings the schedule of the newer epoch.
            if case .revoked(let epoch) = answer { schedule(.adopt(epoch: epoch), after: Int64.random(in: 5...200, using: &random)) }
        case .adopt(let epoch):
            lease.adopt(epoch: epoch)
        case .voterTick(let index):
            voterTick(index)
            schedule(.voterTick(index), after: 50)
        case .durableDone(let index, let incarnation, let withholds):
            guard voters[index].isAlive, voters[index].incarnation == incarnation else { return }
            voters[index].durable = withholds
            voters[index].ledger.madeDurable(withholds)
        case .leaderPoll:
            leaderPoll()
            schedule(.leaderPoll, after: 200)
        case .apply(let index, let epoch, let isPlaced):
            guard voters[index].isAlive, epoch >= voters[index].registryEpoch else { return }
            voters[index].registryEpoch = epoch
            voters[index].isPlaced = isPlaced
        case .voterCrash(let index):
            voters[index].isAlive = false
        case .voterRestart(let index):
            var ledger = LeaseLedger(timing: timing, durableWithholds: voters[index].durable)
            ledger.setVoter(true, nowMilliseconds: voters[index].clock.local(now))
            voters[index].ledger = ledger
            voters[index].isAlive = true
            voters[index].incarnation += 1
            // Its log replays every committed entry.
            voters[index].registryEpoch = latestEpoch
            voters[index].isPlaced = isPlacedGlobally
        case .fault:
            randomFault()
            schedule(.fault, after: Int64.random(in: 500...8_000, using: &random))
        case .setMachineCut(let isCut):
            isMachineCut = isCut
        case .setVoterCut(let index, let isCut):
            voters[index].isCut = isCut
        case .setMachineVoterLinkCut(let index, let isCut):
            voters[index].isCutFromMachine = isCut
        case .setMachinePaused(let isPaused):
            isMachinePaused = isPaused
            if !isPaused {
                let inbox = pausedInbox
                pausedInbox = []
                for event in inbox { handle(event) }
            }
        }
    }

    mutating func send(_ event: Event) {
        if faults == .random, Int.random(in: 0..<100, using: &random) < 5 { return }
        let slow = faults == .random && Int.random(in: 0..<100, using: &random) < 3
        schedule(event, after: slow ? Int64.random(in: 500...4_000, using: &random) : Int64.random(in: 0...40, using: &random))
    }

    mutating func machineTick() {
        let local = machineClock.local(now)
        record(lease.tick(nowMilliseconds: local))
        guard local >= nextRoundLocal else { return }
        nextRoundLocal = local + timing.renewalIntervalMilliseconds
        guard let round = lease.startRound(nowMilliseconds: local), !isMachineCut else { return }
        for index in voters.indices where !voters[index].isCut && !voters[index].isCutFromMachine {
            send(.renewArrives(voter: index, round: round))
        }
    }

    mutating func record(_ directives: [LeaseDirective]) {
        for directive in directives {
            switch directive {
            case .extendSystemdLease(let deadline):
                extensions.append((lease.epoch ?? 0, deadline))
            case .lapsed:
                lapses += 1
                if firstLapseMilliseconds == nil { firstLapseMilliseconds = now }
            case .regained:
                break
            }
        }
    }

    mutating func voterTick(_ index: Int) {
        guard voters[index].isAlive else { return }
        let epoch = voters[index].registryEpoch
        let placed: [MachineID: UInt64] = voters[index].isPlaced ? [machineM: epoch] : [:]
        let hasLeader = !voters[index].isCut && voters.indices.filter { voters[$0].isAlive && !voters[$0].isCut }.count * 2 > voters.count
        if let withholds = voters[index].ledger.tick(nowMilliseconds: voters[index].clock.local(now), hasLeader: hasLeader, placed: placed,
                                                     epochOf: { _ in epoch }) {
            let incarnation = voters[index].incarnation
            schedule(.durableDone(voter: index, incarnation: incarnation, withholds: withholds), after: Int64.random(in: 1...30, using: &random))
        }
    }

    mutating func leaderPoll() {
        guard let leader = voters.indices.first(where: { voters[$0].isAlive && !voters[$0].isCut }) else { return }
        var reports: [VoterName: [MachineID: UInt64]] = [:]
        for index in voters.indices where voters[index].isAlive && (index == leader || !voters[index].isCut) {
            reports[voters[index].name] = voters[index].durable
        }
        let leaderEpoch = voters[leader].registryEpoch
        let leaderLocal = voters[leader].clock.local(now)
        let isRenewing = voters[leader].ledger.isRenewing(machineM, epoch: leaderEpoch, nowMilliseconds: leaderLocal)
        let decisions = LeaseRevocation.decide(reports: reports, voters: voterNames, epochOf: { _ in leaderEpoch },
                                               isRenewing: { _ in isRenewing })
        for entry in decisions.revoke { revoke(epoch: entry.epoch) }
        for entry in decisions.advance { advance(epoch: entry.epoch) }
        // Units are placed on the machine again once it renews with the leader at the new epoch.
        if !isPlacedGlobally, isRenewing {
            isPlacedGlobally = true
            for index in voters.indices { schedule(.apply(voter: index, epoch: leaderEpoch, isPlaced: true), after: Int64.random(in: 0...100, using: &random)) }
        }
    }

    /// Checked at every revocation of `epoch`: every deadline ever given to systemd at this
    /// epoch or before (an advance carries a deadline across epochs) has passed, with Δ and S.
    mutating func revoke(epoch: UInt64) {
        guard epoch == latestEpoch else { return }
        revocations += 1
        if firstRevocationMilliseconds == nil { firstRevocationMilliseconds = now }
        for extension_ in extensions where extension_.epoch <= epoch {
            let stopped = machineClock.real(extension_.deadline) + timing.systemdSlackMilliseconds + timing.stopAllowanceMilliseconds
            if stopped > now {
                violations.append("revoked epoch \(epoch) at \(now) ms, but the units may run until \(stopped) ms (deadline \(extension_.deadline) on the machine's clock, given at epoch \(extension_.epoch))")
            }
        }
        latestEpoch = epoch + 1
        isPlacedGlobally = false
        for index in voters.indices { schedule(.apply(voter: index, epoch: epoch + 1, isPlaced: false), after: Int64.random(in: 0...100, using: &random)) }
    }

    /// The next epoch with the units kept (as `advanceLease`).
    mutating func advance(epoch: UInt64) {
        guard epoch == latestEpoch else { return }
        advances += 1
        latestEpoch = epoch + 1
        let placed = isPlacedGlobally
        for index in voters.indices { schedule(.apply(voter: index, epoch: epoch + 1, isPlaced: placed), after: Int64.random(in: 0...100, using: &random)) }
    }

    mutating func randomFault() {
        switch Int.random(in: 0..<7, using: &random) {
        case 0:
            let duration = Int64.random(in: 100...30_000, using: &random)
            if duration > timing.leaseMilliseconds { seedHadNoLongCut = false }
            cutMachine(atMilliseconds: now, forMilliseconds: duration)
        case 1:
            isolateVoter(Int.random(in: 0..<voters.count, using: &random), atMilliseconds: now,
                         forMilliseconds: Int64.random(in: 100...20_000, using: &random))
        case 2:
            let index = Int.random(in: 0..<voters.count, using: &random)
            guard voters[index].isAlive else { return }
            schedule(.voterCrash(index), after: 0)
            schedule(.voterRestart(index), after: Int64.random(in: 200...10_000, using: &random))
        case 4:
            cutMachineFrom(voter: Int.random(in: 0..<voters.count, using: &random), atMilliseconds: now,
                           forMilliseconds: Int64.random(in: 100...20_000, using: &random))
        case 3:
            let duration = Int64.random(in: 100...40_000, using: &random)
            if duration > timing.leaseMilliseconds { seedHadNoLongCut = false }
            pauseMachine(atMilliseconds: now, forMilliseconds: duration)
        default:
            break
        }
    }
}

/// A binary min-heap of events by (time, sequence): equal times keep their scheduling order.
struct EventHeap<Event> {
    private var items: [(time: Int64, sequence: Int, event: Event)] = []

    var firstTime: Int64? { items.first?.time }

    mutating func push(time: Int64, sequence: Int, _ event: Event) {
        items.append((time, sequence, event))
        var child = items.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard isBefore(child, parent) else { break }
            items.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> (time: Int64, sequence: Int, event: Event) {
        items.swapAt(0, items.count - 1)
        let first = items.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1, right = left + 1
            var smallest = parent
            if left < items.count, isBefore(left, smallest) { smallest = left }
            if right < items.count, isBefore(right, smallest) { smallest = right }
            if smallest == parent { break }
            items.swapAt(parent, smallest)
            parent = smallest
        }
        return first
    }

    private func isBefore(_ a: Int, _ b: Int) -> Bool {
        (items[a].time, items[a].sequence) < (items[b].time, items[b].sequence)
    }
}
