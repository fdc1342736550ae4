import Membership

// The scenarios shared by MembershipSimulationTests (small sizes) and the benchmark (100 to
// 10,000 members). Each returns plain figures; the callers decide what passes.

enum Scenarios {
    struct MassJoin {
        /// Simulated milliseconds until every member knew every other, or nil within the limit.
        var allKnowAllMilliseconds: Int64?
    }

    /// Everyone joins through member 0 at the same moment.
    static func massJoin(memberCount: Int, seed: UInt64, limitMilliseconds: Int64 = 600_000,
                         configuration: MembershipConfiguration = .lan) -> MassJoin {
        var simulation = Simulation(parameters: SimulationParameters(memberCount: memberCount, seed: seed,
                                                                     configuration: configuration), converged: false)
        simulation.join(0, seeds: [])
        for index in 1..<memberCount { simulation.join(index, seeds: [0]) }
        var step: Int64 = 0
        while step < limitMilliseconds {
            step += 100
            simulation.run(until: step)
            if simulation.allKnowAll { return MassJoin(allKnowAllMilliseconds: step) }
        }
        return MassJoin(allKnowAllMilliseconds: nil)
    }

    /// Each figure names exactly what it measures; all times count from the crash.
    struct CrashDetection {
        /// Per crash: until the first live member marked it suspect (SWIM's detection: a failed
        /// probe, direct and indirect). Nil if no one did within the window.
        var firstSuspicionMilliseconds: [Int64?] = []
        /// Per crash: until every live member held it suspect or dead, whichever came first for
        /// each ("all know of the crash"). Nil if not within the window.
        var allKnowMilliseconds: [Int64?] = []
        /// Per crash: until every live member had declared it dead (Lifeguard's suspicion timeout
        /// included). Nil if not within the window.
        var allDeadMilliseconds: [Int64?] = []
        /// Per crash and live observer: until that observer declared it dead.
        var deadPerObserverMilliseconds: [Int64] = []
        /// Per metadata change (one each round, made at the crash): until every live member saw
        /// the new incarnation. Nil if not within the window.
        var disseminationMilliseconds: [Int64?] = []
        var falsePositives = 0
        var datagramsPerMemberPerSecond: Double = 0
        var datagramBytesPerMemberPerSecond: Double = 0
        var streamsPerMemberPerSecond: Double = 0
        var datagramBytesMax = 0
    }

    /// A converged cluster; every `windowMilliseconds` one member changes its metadata and
    /// another crashes (crashed members stay down, so the group shrinks by one each round).
    static func crashDetection(memberCount: Int, seed: UInt64, crashes: Int, lossProbability: Double = 0,
                               windowMilliseconds: Int64 = 30_000,
                               configuration: MembershipConfiguration = .lan) -> CrashDetection {
        var simulation = Simulation(parameters: SimulationParameters(memberCount: memberCount, seed: seed,
                                                                     configuration: configuration,
                                                                     lossProbability: lossProbability),
                                    converged: true)
        var result = CrashDetection()
        simulation.run(until: 5_000)
        let before = simulation.observations
        let start = simulation.now
        var random = MembershipRandom(seed: seed ^ 0xC0FFEE)
        for round in 0..<crashes {
            let roundStart = simulation.now
            var victim = random.below(memberCount)
            while simulation.nodes[victim].crashed { victim = random.below(memberCount) }
            var changer = random.below(memberCount)
            while simulation.nodes[changer].crashed || changer == victim { changer = random.below(memberCount) }
            simulation.updateMetadata(changer)
            simulation.crash(victim)
            simulation.run(until: roundStart + windowMilliseconds)
            let live = memberCount - (round + 1)
            let known = simulation.observations.knownFailedAt[victim] ?? []
            result.firstSuspicionMilliseconds.append(known.min().map { $0 - roundStart })
            result.allKnowMilliseconds.append(known.count >= live ? known.max()! - roundStart : nil)
            let dead = simulation.observations.deathSeenAt[victim] ?? []
            result.deadPerObserverMilliseconds += dead.map { $0 - roundStart }
            result.allDeadMilliseconds.append(dead.count >= live ? dead.max()! - roundStart : nil)
            let updates = simulation.observations.updateSeenAt[changer] ?? []
            result.disseminationMilliseconds.append(updates.count >= live - 1 ? updates.max()! - roundStart : nil)
        }
        let memberSeconds = Double(memberCount) * Double(simulation.now - start) / 1_000
        let after = simulation.observations
        result.datagramsPerMemberPerSecond = Double(after.datagramsSent - before.datagramsSent) / memberSeconds
        result.datagramBytesPerMemberPerSecond = Double(after.datagramBytesSent - before.datagramBytesSent) / memberSeconds
        result.streamsPerMemberPerSecond = Double(after.streamsSent - before.streamsSent) / memberSeconds
        result.falsePositives = after.falsePositives.count
        result.datagramBytesMax = after.datagramBytesMax
        return result
    }

    struct FalsePositives {
        /// Declarations "dead" about members that never crashed, by anyone.
        var declarations = 0
        /// Distinct healthy members declared dead by at least one member.
        var membersAffected = 0
        var slowMemberDeclarations = 0
        var seconds: Double = 0
        /// Declarations about healthy members per member-hour of the run (members × duration).
        var declarationsPerMemberHour: Double = 0
    }

    /// A converged cluster run for `durationMilliseconds` with datagram loss and optionally slow members
    /// (every message to or from them delayed by up to `slowDelayMilliseconds`).
    static func falsePositives(memberCount: Int, seed: UInt64, durationMilliseconds: Int64, lossProbability: Double,
                               slowMembers: [Int] = [], slowDelayMilliseconds: Int64 = 0,
                               configuration: MembershipConfiguration = .lan) -> FalsePositives {
        var simulation = Simulation(parameters: SimulationParameters(memberCount: memberCount, seed: seed,
                                                                     configuration: configuration,
                                                                     lossProbability: lossProbability),
                                    converged: true)
        for slow in slowMembers { simulation.slowDelayMilliseconds[slow] = slowDelayMilliseconds }
        simulation.run(until: durationMilliseconds)
        let wrong = simulation.observations.falsePositives
        return FalsePositives(declarations: wrong.count(where: { !slowMembers.contains($0.subject) }),
                              membersAffected: Set(wrong.map(\.subject)).subtracting(slowMembers).count,
                              slowMemberDeclarations: wrong.count(where: { slowMembers.contains($0.subject) }),
                              seconds: Double(durationMilliseconds) / 1_000,
                              declarationsPerMemberHour: Double(wrong.count(where: { !slowMembers.contains($0.subject) }))
                                  / (Double(memberCount) * Double(durationMilliseconds) / 3_600_000))
    }

    struct Partition {
        /// From the heal until every member sees every member alive, or nil within the limit.
        var convergedAfterHealMilliseconds: Int64?
        /// From the heal until every member of the majority side sees every member of the cut-off
        /// side alive again (the test bed's "rejoin" figure), or nil within the limit.
        var cutOffSeenAliveAfterHealMilliseconds: Int64?
        /// How long the cut lasted.
        var partitionMilliseconds: Int64
        /// Whether, at the heal, the home side held the cut-off side dead, and the reverse.
        var homeSawCutOffDead: Bool
        var cutOffSawHomeDead: Bool
        var sidesSawEachOtherDead: Bool { homeSawCutOffDead && cutOffSawHomeDead }
    }

    /// The members in `cutOff` (default: the odd half) are cut off from the rest for
    /// `partitionMilliseconds`, or with `healOnceDeclaredDead` only until every home member holds
    /// every cut-off member dead (the test bed's isolate-then-rejoin), then healed. Views are
    /// checked every `checkEveryMilliseconds` after the heal.
    static func partitionHeals(memberCount: Int, seed: UInt64, partitionMilliseconds: Int64,
                               cutOff: [Int]? = nil, healOnceDeclaredDead: Bool = false,
                               limitMilliseconds: Int64 = 300_000, checkEveryMilliseconds: Int64 = 1_000,
                               configuration: MembershipConfiguration = .lan) -> Partition {
        var simulation = Simulation(parameters: SimulationParameters(memberCount: memberCount, seed: seed,
                                                                     configuration: configuration), converged: true)
        simulation.run(until: 1_000)
        let away = cutOff ?? (0..<memberCount).filter { $0 % 2 == 1 }
        for index in away { simulation.partitionGroup[index] = 1 }
        let home = (0..<memberCount).filter { simulation.partitionGroup[$0] == 0 }
        if healOnceDeclaredDead {
            var step = simulation.now
            while step < 1_000 + partitionMilliseconds && !simulation.allSee(away, as: .dead, from: home) {
                step += checkEveryMilliseconds
                simulation.run(until: step)
            }
        } else {
            simulation.run(until: 1_000 + partitionMilliseconds)
        }
        var result = Partition(partitionMilliseconds: simulation.now - 1_000,
                               homeSawCutOffDead: simulation.allSee(away, as: .dead, from: home),
                               cutOffSawHomeDead: simulation.allSee(home, as: .dead, from: away))
        for index in 0..<memberCount { simulation.partitionGroup[index] = 0 }
        let healedAt = simulation.now
        var step = healedAt
        while step < healedAt + limitMilliseconds {
            step += checkEveryMilliseconds
            simulation.run(until: step)
            if result.cutOffSeenAliveAfterHealMilliseconds == nil, simulation.allSee(away, as: .alive, from: home) {
                result.cutOffSeenAliveAfterHealMilliseconds = step - healedAt
            }
            if simulation.viewsAgree() {
                result.convergedAfterHealMilliseconds = step - healedAt
                return result
            }
        }
        return result
    }
}
