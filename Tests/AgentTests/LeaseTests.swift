import Registry
import Testing
import TestSupport
@testable import Agent

let standardTiming = try! LeaseTiming(leaseMilliseconds: 2_000, renewalIntervalMilliseconds: 500, stopAllowanceMilliseconds: 1_000)
let threeVoters: [VoterName] = ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
let machineM = try! MachineID("m")

@Suite(.onBackgroundThreads) struct LeaseTimingTests {
    @Test func expiryCoversTheLeaseAtTheSlowestClockPlusSlackAndStopsAtTheFastest() {
        // (1 + 1 %) · (2,000 / (1 − 1 %) + 500 + 1,000) = 1.01 · 3,520.2 = 3,555.4, rounded up twice.
        #expect(standardTiming.expiryMilliseconds == 3_557)
    }

    /// The relation the safety argument needs, E/(1+ρ) ≥ L/(1−ρ) + Δ + S, checked in exact
    /// integer arithmetic over random settings.
    @Test func theExpiryRelationHoldsForEverySetting() throws {
        var random = SplitMix64(seed: 11)
        for _ in 0..<2_000 {
            let lease = Int64.random(in: 300...3_600_000, using: &random)
            let timing = try LeaseTiming(
                leaseMilliseconds: lease, renewalIntervalMilliseconds: Int64.random(in: 1...lease / 3, using: &random),
                stopAllowanceMilliseconds: Int64.random(in: 0...600_000, using: &random),
                systemdSlackMilliseconds: Int64.random(in: 0...60_000, using: &random),
                clockDriftPartsPerMillion: Int64.random(in: 0..<100_000, using: &random))
            let million: Int64 = 1_000_000
            let rho = timing.clockDriftPartsPerMillion
            // E · 10^6 / (10^6 + ρ) ≥ L · 10^6 / (10^6 − ρ) + Δ + S, multiplied out.
            let left = timing.expiryMilliseconds * million * (million - rho)
            let right = (timing.leaseMilliseconds * million
                + (timing.systemdSlackMilliseconds + timing.stopAllowanceMilliseconds) * (million - rho)) * (million + rho)
            #expect(left >= right, "\(timing)")
        }
    }

    @Test func settingsThatBreakARelationAreRefusedWithTheKeyNamed() {
        #expect(throws: LeaseTimingError.self) {
            try LeaseTiming(leaseMilliseconds: 1_000, renewalIntervalMilliseconds: 400, stopAllowanceMilliseconds: 0)
        }
        #expect(throws: LeaseTimingError.self) {
            try LeaseTiming(leaseMilliseconds: 100, renewalIntervalMilliseconds: 10, stopAllowanceMilliseconds: 0)
        }
        #expect(throws: LeaseTimingError.self) {
            try LeaseTiming(leaseMilliseconds: 2_000, renewalIntervalMilliseconds: 500, stopAllowanceMilliseconds: -1)
        }
        do {
            _ = try LeaseTiming(leaseMilliseconds: 1_000, renewalIntervalMilliseconds: 0, stopAllowanceMilliseconds: 0)
            Issue.record("a zero renewal interval was accepted")
        } catch {
            #expect(error.description.contains("agent_renew_interval"))
        }
    }
}

@Suite(.onBackgroundThreads) struct MachineLeaseTests {
    func lease(epoch: UInt64 = 0) -> MachineLease {
        var lease = MachineLease(timing: standardTiming)
        lease.adopt(epoch: epoch)
        return lease
    }

    @Test func aMajorityHoldsTheLeaseFromTheRoundsSendTimeNotItsAnswers() {
        var lease = lease()
        let round = lease.startRound(nowMilliseconds: 1_000)!
        #expect(lease.received(.granted(epoch: 0, voters: threeVoters), from: threeVoters[0], round: round.number, nowMilliseconds: 1_300).isEmpty,
                "one grant of three is no majority")
        let directives = lease.received(.granted(epoch: 0, voters: threeVoters), from: threeVoters[1], round: round.number, nowMilliseconds: 1_400)
        #expect(directives == [.extendSystemdLease(deadlineMilliseconds: 3_000), .regained])
        #expect(lease.phase == .held(deadlineMilliseconds: 3_000))
        #expect(lease.received(.granted(epoch: 0, voters: threeVoters), from: threeVoters[2], round: round.number, nowMilliseconds: 1_500).isEmpty,
                "a third grant of a held round changes nothing")
    }

    @Test func grantsNamingTwoConfigurationsNeedAMajorityOfEach() {
        var lease = lease()
        let old = ["a", "b", "c"], new = ["a", "b", "d"]
        let round = lease.startRound(nowMilliseconds: 0)!
        #expect(lease.received(.granted(epoch: 0, voters: old), from: "c", round: round.number, nowMilliseconds: 10).isEmpty)
        #expect(lease.received(.granted(epoch: 0, voters: new), from: "d", round: round.number, nowMilliseconds: 10).isEmpty,
                "c of the old and d of the new: one of three in each")
        #expect(!lease.received(.granted(epoch: 0, voters: new), from: "a", round: round.number, nowMilliseconds: 10).isEmpty,
                "a joins: {a, c} of the old and {a, d} of the new")
    }

    @Test func aGrantFromOutsideItsOwnConfigurationOrAtAnotherEpochCountsForNothing() {
        var lease = lease(epoch: 4)
        let round = lease.startRound(nowMilliseconds: 0)!
        _ = lease.received(.granted(epoch: 4, voters: ["a", "b"]), from: "x", round: round.number, nowMilliseconds: 5)
        _ = lease.received(.granted(epoch: 3, voters: threeVoters), from: threeVoters[0], round: round.number, nowMilliseconds: 5)
        _ = lease.received(.granted(epoch: 3, voters: threeVoters), from: threeVoters[1], round: round.number, nowMilliseconds: 5)
        #expect(lease.phase == .unknown)
    }

    @Test func anAnswerThatArrivesAfterItsLeaseRanOutGrantsNothing() {
        var lease = lease()
        let round = lease.startRound(nowMilliseconds: 0)!
        _ = lease.received(.granted(epoch: 0, voters: threeVoters), from: threeVoters[0], round: round.number, nowMilliseconds: 2_000)
        #expect(lease.received(.granted(epoch: 0, voters: threeVoters), from: threeVoters[1], round: round.number, nowMilliseconds: 2_000).isEmpty)
        #expect(!lease.isHeld(nowMilliseconds: 2_000))
    }

    @Test func theLeaseLapsesAtItsDeadlineAndIsRegainedByTheNextHeldRound() {
        var lease = lease()
        hold(&lease, at: 0)
        #expect(lease.tick(nowMilliseconds: 1_999).isEmpty)
        #expect(lease.tick(nowMilliseconds: 2_000) == [.lapsed])
        #expect(lease.tick(nowMilliseconds: 2_100).isEmpty, "lapses once")
        #expect(hold(&lease, at: 5_000) == [.extendSystemdLease(deadlineMilliseconds: 7_000), .regained])
    }

    /// A machine that still holds its lease when it hears of a newer epoch is looking at an
    /// advance (a revocation comes only after its deadline): the deadline stands, and only
    /// rounds of the new epoch extend it once the schedule brought the epoch.
    @Test func aNewerEpochKeepsTheDeadlineAndOnlyItsOwnRoundsExtendIt() {
        var lease = lease(epoch: 1)
        hold(&lease, at: 0, epoch: 1)
        let round = lease.startRound(nowMilliseconds: 500)!
        #expect(lease.received(.revoked(currentEpoch: 2), from: threeVoters[0], round: round.number, nowMilliseconds: 510).isEmpty)
        #expect(lease.isHeld(nowMilliseconds: 1_999))
        lease.adopt(epoch: 1)
        #expect(lease.epoch == 1, "an older schedule changes nothing")
        lease.adopt(epoch: 2)
        #expect(lease.epoch == 2 && lease.isHeld(nowMilliseconds: 1_999))
        #expect(hold(&lease, at: 600, epoch: 1).isEmpty, "grants of the old epoch count for nothing now")
        #expect(hold(&lease, at: 700, epoch: 2) == [.extendSystemdLease(deadlineMilliseconds: 2_700)])
    }

    @Test func beforeTheFirstGrantNothingLapses() {
        var lease = lease()
        #expect(lease.tick(nowMilliseconds: 100_000).isEmpty)
        #expect(lease.phase == .unknown)
        let round = lease.startRound(nowMilliseconds: 100_000)!
        #expect(lease.received(.revoked(currentEpoch: 1), from: "a", round: round.number, nowMilliseconds: 100_001).isEmpty)
        #expect(lease.phase == .unknown)
    }

    @Test func answersToRoundsPastTheKeptWindowAreDropped() {
        var lease = lease()
        let first = lease.startRound(nowMilliseconds: 0)!
        for step in 1...MachineLease.roundsKeptMax { _ = lease.startRound(nowMilliseconds: Int64(step)) }
        _ = lease.received(.granted(epoch: 0, voters: threeVoters), from: threeVoters[0], round: first.number, nowMilliseconds: 20)
        _ = lease.received(.granted(epoch: 0, voters: threeVoters), from: threeVoters[1], round: first.number, nowMilliseconds: 20)
        #expect(lease.phase == .unknown)
    }

    @discardableResult
    func hold(_ lease: inout MachineLease, at now: Int64, epoch: UInt64 = 0) -> [LeaseDirective] {
        let round = lease.startRound(nowMilliseconds: now)!
        var directives: [LeaseDirective] = []
        for voter in threeVoters.prefix(2) {
            directives += lease.received(.granted(epoch: epoch, voters: threeVoters), from: voter, round: round.number, nowMilliseconds: now)
        }
        return directives
    }
}

@Suite(.onBackgroundThreads) struct LeaseLedgerTests {
    /// Ticks far apart stand for ticks every 100 ms in between: the gap rule has its own test.
    func voter(at now: Int64 = 0, durable: [MachineID: UInt64] = [:]) -> LeaseLedger {
        var ledger = LeaseLedger(timing: standardTiming, durableWithholds: durable, tickGapMillisecondsMax: 1 << 40)
        ledger.setVoter(true, nowMilliseconds: now)
        return ledger
    }

    @Test func aVoterGrantsOnlyAtTheEpochItsRegistryHolds() {
        var ledger = voter()
        #expect(ledger.renew(machine: machineM, epoch: 2, registryEpoch: 2, voters: threeVoters, nowMilliseconds: 1) == .granted(epoch: 2, voters: threeVoters))
        #expect(ledger.renew(machine: machineM, epoch: 1, registryEpoch: 2, voters: threeVoters, nowMilliseconds: 1) == .revoked(currentEpoch: 2))
        guard case .notGranted = ledger.renew(machine: machineM, epoch: 3, registryEpoch: 2, voters: threeVoters, nowMilliseconds: 1) else {
            Issue.record("a voter behind the machine's epoch granted")
            return
        }
        var outsider = LeaseLedger(timing: standardTiming)
        guard case .notGranted = outsider.renew(machine: machineM, epoch: 0, registryEpoch: 0, voters: threeVoters, nowMilliseconds: 1) else {
            Issue.record("a peer that is not a voter granted")
            return
        }
    }

    @Test func aSilentPlacedMachineIsWithheldAfterTheExpiryAndNeverGrantedThatEpochAgain() {
        var ledger = voter()
        _ = ledger.renew(machine: machineM, epoch: 0, registryEpoch: 0, voters: threeVoters, nowMilliseconds: 1_000)
        let expiry = standardTiming.expiryMilliseconds
        #expect(ledger.tick(nowMilliseconds: 1_000 + expiry - 1, placed: [machineM: 0], epochOf: { _ in 0 }) == nil)
        let toPersist = ledger.tick(nowMilliseconds: 1_000 + expiry, placed: [machineM: 0], epochOf: { _ in 0 })
        #expect(toPersist == [machineM: 0])
        #expect(ledger.renew(machine: machineM, epoch: 0, registryEpoch: 0, voters: threeVoters, nowMilliseconds: 1_000 + expiry) == .withheld(epoch: 0),
                "refused before it is even durable")
        #expect(ledger.durable.isEmpty, "reported only once durable")
        ledger.madeDurable(toPersist!)
        #expect(ledger.durable == [machineM: 0])
        // A restart reads the withhold back and still refuses.
        var restarted = voter(at: 50_000, durable: ledger.durable)
        #expect(restarted.renew(machine: machineM, epoch: 0, registryEpoch: 0, voters: threeVoters, nowMilliseconds: 50_001) == .withheld(epoch: 0))
        // The next epoch is granted, and the withhold of the old one is forgotten.
        #expect(restarted.renew(machine: machineM, epoch: 1, registryEpoch: 1, voters: threeVoters, nowMilliseconds: 50_002) == .granted(epoch: 1, voters: threeVoters))
        #expect(restarted.tick(nowMilliseconds: 50_003, placed: [:], epochOf: { _ in 1 }) == [:])
    }

    @Test func countingStartsWhenTheVoterFirstSeesTheMachineNotAtItsOwnStart() {
        var ledger = voter(at: 0)
        // Placed at t = 100,000 (say, after a revocation moved it to epoch 1): counted from then.
        #expect(ledger.tick(nowMilliseconds: 100_000, placed: [machineM: 1], epochOf: { _ in 1 }) == nil)
        #expect(ledger.tick(nowMilliseconds: 100_000 + standardTiming.expiryMilliseconds - 1, placed: [machineM: 1], epochOf: { _ in 1 }) == nil)
        #expect(ledger.tick(nowMilliseconds: 100_000 + standardTiming.expiryMilliseconds, placed: [machineM: 1], epochOf: { _ in 1 }) == [machineM: 1])
    }

    @Test func aMachineWithNothingPlacedThatNeverRenewedIsNeverWithheld() {
        var ledger = voter()
        #expect(ledger.tick(nowMilliseconds: 1_000_000, placed: [:], epochOf: { _ in 0 }) == nil)
        #expect(ledger.withheld.isEmpty)
    }

    @Test func becomingAVoterStartsEveryCountAfresh() {
        var ledger = voter(at: 0)
        _ = ledger.tick(nowMilliseconds: 0, placed: [machineM: 0], epochOf: { _ in 0 })
        ledger.setVoter(false, nowMilliseconds: 1_000)
        #expect(ledger.tick(nowMilliseconds: 10_000, placed: [machineM: 0], epochOf: { _ in 0 }) == nil, "a non-voter withholds nothing")
        ledger.setVoter(true, nowMilliseconds: 20_000)
        #expect(ledger.tick(nowMilliseconds: 20_000, placed: [machineM: 0], epochOf: { _ in 0 }) == nil)
        #expect(ledger.withheld.isEmpty)
    }

    /// Withholding later is always safe, so a voter that is the likely cause of the silence
    /// counts afresh: after it had no leader, and after a gap in its own ticks (it was frozen).
    @Test func aVoterWithoutALeaderOrBackFromAFreezeCountsAfresh() {
        var ledger = LeaseLedger(timing: standardTiming, tickGapMillisecondsMax: 1_000)
        ledger.setVoter(true, nowMilliseconds: 0)
        let expiry = standardTiming.expiryMilliseconds
        func tickEvery100(from start: Int64, to end: Int64, hasLeader: Bool = true) -> [MachineID: UInt64]? {
            var last: [MachineID: UInt64]?
            for now in stride(from: start, through: end, by: 100) {
                last = ledger.tick(nowMilliseconds: now, hasLeader: hasLeader, placed: [machineM: 0], epochOf: { _ in 0 }) ?? last
            }
            return last
        }
        // Cut off from the other voters (no leader) for twice E: nothing withheld.
        #expect(tickEvery100(from: 0, to: 2 * expiry, hasLeader: false) == nil)
        // Back with a leader: the count starts now.
        #expect(tickEvery100(from: 2 * expiry + 100, to: 3 * expiry) == nil)
        // A freeze of 10 s (no ticks), then E of ticks: withheld only at the end of those.
        let thaw = 3 * expiry + 10_000
        #expect(tickEvery100(from: thaw, to: thaw + expiry - 100) == nil)
        #expect(ledger.tick(nowMilliseconds: thaw + expiry, placed: [machineM: 0], epochOf: { _ in 0 }) == [machineM: 0])
    }

    @Test func aWriteThatDidNotHappenIsOfferedAgain() {
        var ledger = voter()
        let first = ledger.tick(nowMilliseconds: standardTiming.expiryMilliseconds, placed: [machineM: 0], epochOf: { _ in 0 })
        #expect(first == nil, "counted from the first tick")
        let toWrite = ledger.tick(nowMilliseconds: 2 * standardTiming.expiryMilliseconds, placed: [machineM: 0], epochOf: { _ in 0 })
        #expect(toWrite == [machineM: 0])
        // The write failed (never madeDurable): the next tick asks again.
        #expect(ledger.tick(nowMilliseconds: 2 * standardTiming.expiryMilliseconds + 100, placed: [machineM: 0], epochOf: { _ in 0 }) == [machineM: 0])
        ledger.madeDurable([machineM: 0])
        #expect(ledger.tick(nowMilliseconds: 2 * standardTiming.expiryMilliseconds + 200, placed: [machineM: 0], epochOf: { _ in 0 }) == nil)
    }

    @Test func renewingMeansGrantedWithinTheLeaseTime() {
        var ledger = voter()
        #expect(!ledger.isRenewing(machineM, epoch: 0, nowMilliseconds: 0))
        _ = ledger.renew(machine: machineM, epoch: 0, registryEpoch: 0, voters: threeVoters, nowMilliseconds: 100)
        #expect(ledger.isRenewing(machineM, epoch: 0, nowMilliseconds: 2_099))
        #expect(!ledger.isRenewing(machineM, epoch: 0, nowMilliseconds: 2_100))
        #expect(!ledger.isRenewing(machineM, epoch: 1, nowMilliseconds: 200))
    }

    @Test func theLedgerIsBounded() {
        var ledger = LeaseLedger(timing: standardTiming, machinesMax: 2, tickGapMillisecondsMax: 1 << 40)
        ledger.setVoter(true, nowMilliseconds: 0)
        for index in 0..<2 {
            #expect(ledger.renew(machine: try! MachineID("m\(index)"), epoch: 0, registryEpoch: 0, voters: threeVoters, nowMilliseconds: 1)
                == .granted(epoch: 0, voters: threeVoters))
        }
        guard case .notGranted(let reason, _) = ledger.renew(machine: try! MachineID("m9"), epoch: 0, registryEpoch: 0, voters: threeVoters,
                                                             nowMilliseconds: 1) else {
            Issue.record("a third machine was granted past the limit of 2")
            return
        }
        #expect(reason.contains("limit"))
    }
}

extension LeaseLedgerTests {
    /// A cloned image keeps /etc/machine-id: the clone at another address is refused while the
    /// holder renews, a restart at the holder's own address is granted at once, and a machine
    /// that moved is granted E after its old address last renewed.
    @Test func oneHolderAtATimeUntilTheExpiryAfterItsLastGrant() {
        var ledger = voter()
        let expiry = standardTiming.expiryMilliseconds
        func renew(_ holder: String?, at now: Int64) -> LeaseAnswer {
            ledger.renew(machine: machineM, epoch: 0, registryEpoch: 0, voters: threeVoters, holder: holder, nowMilliseconds: now)
        }
        #expect(renew("10.0.1.4", at: 1_000) == .granted(epoch: 0, voters: threeVoters))
        #expect(renew("10.0.1.5", at: 1_100) == .heldElsewhere(holder: "10.0.1.4"))
        #expect(renew("10.0.1.4", at: 1_500) == .granted(epoch: 0, voters: threeVoters), "the holder's own restart")
        #expect(renew("10.0.1.5", at: 1_500 + expiry - 1) == .heldElsewhere(holder: "10.0.1.4"))
        #expect(renew(nil, at: 1_600) == .granted(epoch: 0, voters: threeVoters), "a peer that names no holder is not checked")
        #expect(renew("10.0.1.5", at: 1_600 + expiry) == .granted(epoch: 0, voters: threeVoters), "E after the last grant")
        #expect(renew("10.0.1.4", at: 1_600 + expiry + 1) == .heldElsewhere(holder: "10.0.1.5"))
    }

    /// The argument of `renew`'s comment, checked by brute force: two processes with one machine
    /// ID renew with three voters, each round reaching a random subset of them at random times;
    /// a process holds its lease for L from the send time of a round a majority granted. At no
    /// moment do both hold it.
    @Test func twoProcessesWithOneMachineIDNeverHoldTheLeaseAtTheSameTime() {
        var random = SplitMix64(seed: 29)
        let timing = standardTiming
        for _ in 0..<300 {
            var ledgers = threeVoters.map { _ in voter() }
            var holdings: [(holder: String, from: Int64, until: Int64)] = []
            var now: Int64 = 0
            for _ in 0..<200 {
                now += Int64.random(in: 0...timing.renewalIntervalMilliseconds, using: &random)
                let holder = Bool.random(using: &random) ? "10.0.1.4" : "10.0.1.5"
                // One process may fall silent for a while (cut off, frozen).
                if Int.random(in: 0..<20, using: &random) == 0 { now += Int64.random(in: 0...2 * timing.expiryMilliseconds, using: &random) }
                let sentAt = now
                var grants = 0
                for index in ledgers.indices where Bool.random(using: &random) || Bool.random(using: &random) {
                    let arrival = sentAt + Int64.random(in: 0...100, using: &random)
                    if case .granted = ledgers[index].renew(machine: machineM, epoch: 0, registryEpoch: 0, voters: threeVoters,
                                                            holder: holder, nowMilliseconds: arrival) {
                        grants += 1
                    }
                }
                if grants * 2 > threeVoters.count {
                    let until = sentAt + timing.leaseMilliseconds
                    holdings.append((holder, sentAt, until))
                }
            }
            for first in holdings.indices {
                for second in holdings.indices where holdings[second].holder != holdings[first].holder {
                    let overlap = holdings[first].from < holdings[second].until && holdings[second].from < holdings[first].until
                    #expect(!overlap, "\(holdings[first]) and \(holdings[second]) held at once")
                }
            }
        }
    }
}

@Suite(.onBackgroundThreads) struct IdentityGuardTests {
    let decision = standardTiming.expiryMilliseconds + 2 * standardTiming.renewalIntervalMilliseconds

    @Test func aProcessThatNeverHeldTheLeaseIsRefusedOnceASignalLastedTheDecisionTime() {
        var guardian = IdentityGuard(timing: standardTiming)
        #expect(guardian.clash(with: "10.0.1.4:7946", nowMilliseconds: 1_000) == nil)
        #expect(guardian.heldElsewhere(by: "10.0.1.4", nowMilliseconds: 1_200) == nil)
        #expect(guardian.tick(nowMilliseconds: 1_000 + decision - 1) == nil)
        #expect(guardian.tick(nowMilliseconds: 1_000 + decision) == .refuse(other: "10.0.1.4"), "the lease holder is named")
        #expect(guardian.tick(nowMilliseconds: 1_000 + decision + 1) == nil, "said once")
    }

    @Test func theLeaseHolderKeepsRunningAndReportsTheClashOnce() {
        var guardian = IdentityGuard(timing: standardTiming)
        #expect(guardian.clash(with: "10.0.1.5:7946", nowMilliseconds: 1_000) == nil)
        #expect(guardian.heldElsewhere(by: "10.0.1.5", nowMilliseconds: 1_100) == nil, "a voter the other reached first")
        #expect(guardian.leaseHeld(nowMilliseconds: 1_200) == .reportClash(other: "10.0.1.5:7946"))
        #expect(guardian.tick(nowMilliseconds: 1_000 + 10 * decision) == nil, "never refused after holding the lease")
        #expect(guardian.heldElsewhere(by: "10.0.1.5", nowMilliseconds: 1_000 + 10 * decision) == nil)
        #expect(guardian.tick(nowMilliseconds: 1_000 + 20 * decision) == nil)
    }

    /// A machine whose address changed is refused by the voters until E after its previous
    /// process's last renewal; gossip finds no clash (nothing answers at the old address).
    @Test func aMachineThatMovedIsNotRefusedForTheExpiryItWaits() {
        var guardian = IdentityGuard(timing: standardTiming)
        #expect(guardian.heldElsewhere(by: "10.0.1.4", nowMilliseconds: 1_000) == nil)
        #expect(guardian.heldElsewhere(by: "10.0.1.4", nowMilliseconds: 1_000 + standardTiming.expiryMilliseconds - 1) == nil)
        #expect(guardian.leaseHeld(nowMilliseconds: 1_000 + standardTiming.expiryMilliseconds) == nil, "no clash to report")
        #expect(guardian.tick(nowMilliseconds: 1_000 + 10 * decision) == nil)
    }

    @Test func withoutAnySignalNothingIsDecided() {
        var guardian = IdentityGuard(timing: standardTiming)
        #expect(guardian.tick(nowMilliseconds: 1_000_000) == nil)
        #expect(guardian.leaseHeld(nowMilliseconds: 1_000_001) == nil)
    }
}

@Suite(.onBackgroundThreads) struct LeaseRevocationTests {
    @Test func aMajorityRevokesAndAMinorityAdvancesAMachineThatStillRenews() {
        let other = try! MachineID("n"), silent = try! MachineID("s")
        let reports: [VoterName: [MachineID: UInt64]] = [
            "a": [machineM: 3, other: 1, silent: 0], "b": [machineM: 3], "z": [other: 1], "c": [other: 0],
        ]
        let epochs: [MachineID: UInt64] = [machineM: 3, other: 1, silent: 0]
        let decisions = LeaseRevocation.decide(reports: reports, voters: ["a", "b", "c"], epochOf: { epochs[$0]! },
                                               isRenewing: { $0 != silent })
        // m: a and b withheld; n: only a at its epoch (z is not a voter, c reported an old epoch),
        // and n still renews; s: only a, but s renews nothing either, so it is left to lapse.
        #expect(decisions.revoke == [.init(machine: machineM, epoch: 3)])
        #expect(decisions.advance == [.init(machine: other, epoch: 1)])
        let five = LeaseRevocation.decide(reports: reports, voters: ["a", "b", "c", "d", "e"], epochOf: { epochs[$0]! }, isRenewing: { _ in true })
        #expect(five.revoke.isEmpty, "two of five is no majority")
        #expect(five.advance.map(\.machine) == [machineM, other, silent])
    }
}
