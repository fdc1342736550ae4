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

    struct CrashDetection {
        /// Per crash and live observer: milliseconds from the crash until it saw the member dead.
        var detectionMilliseconds: [Int64] = []
        /// Per crash: until every live member saw it dead (nil if not within the limit).
        var allDetectedMilliseconds: [Int64?] = []
        /// Per metadata change: until every member saw the new incarnation.
        var disseminationMilliseconds: [Int64?] = []
        var falsePositives = 0
        var datagramsPerMemberPerSecond: Double = 0
        var datagramBytesMax = 0
    }

    /// A converged cluster; every 30 s one member changes its metadata and another crashes.
    static func crashDetection(memberCount: Int, seed: UInt64, crashes: Int, lossProbability: Double = 0,
                               configuration: MembershipConfiguration = .lan) -> CrashDetection {
        var simulation = Simulation(parameters: SimulationParameters(memberCount: memberCount, seed: seed,
                                                                     configuration: configuration,
                                                                     lossProbability: lossProbability),
                                    converged: true)
        var result = CrashDetection()
        let windowMilliseconds: Int64 = 30_000
        simulation.run(until: 5_000)
        let datagramsBefore = simulation.observations.datagramsSent
        let start = simulation.now
        var random = MembershipRandom(seed: seed ^ 0xC0FFEE)
        var updated: [Int] = []
        for round in 0..<crashes {
            let roundStart = simulation.now
            var victim = random.below(memberCount)
            while simulation.nodes[victim].crashed { victim = random.below(memberCount) }
            var changer = random.below(memberCount)
            while simulation.nodes[changer].crashed || changer == victim { changer = random.below(memberCount) }
            simulation.updateMetadata(changer)
            updated.append(changer)
            simulation.crash(victim)
            simulation.run(until: roundStart + windowMilliseconds)
            let seen = simulation.observations.deathSeenAt[victim] ?? []
            result.detectionMilliseconds += seen.map { $0 - roundStart }
            let live = memberCount - (round + 1)
            result.allDetectedMilliseconds.append(seen.count >= live ? seen.max()! - roundStart : nil)
            let updates = simulation.observations.updateSeenAt[changer] ?? []
            result.disseminationMilliseconds.append(updates.count >= live - 1 ? updates.max()! - roundStart : nil)
        }
        let seconds = Double(simulation.now - start) / 1_000
        result.datagramsPerMemberPerSecond = Double(simulation.observations.datagramsSent - datagramsBefore)
            / Double(memberCount) / seconds
        result.falsePositives = simulation.observations.falsePositives.count
        result.datagramBytesMax = simulation.observations.datagramBytesMax
        return result
    }

    struct FalsePositives {
        /// Declarations "dead" about members that never crashed, by anyone.
        var declarations = 0
        /// Distinct healthy members declared dead by at least one member.
        var membersAffected = 0
        var slowMemberDeclarations = 0
        var seconds: Double = 0
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
                              seconds: Double(durationMilliseconds) / 1_000)
    }

    struct Partition {
        /// From the heal until every member sees every member alive, or nil within the limit.
        var convergedAfterHealMilliseconds: Int64?
        /// Whether each side had declared the other dead before the heal.
        var sidesSawEachOtherDead: Bool
    }

    /// Two halves cut apart for `partitionMilliseconds`, then healed.
    static func partitionHeals(memberCount: Int, seed: UInt64, partitionMilliseconds: Int64,
                               limitMilliseconds: Int64 = 300_000,
                               configuration: MembershipConfiguration = .lan) -> Partition {
        var simulation = Simulation(parameters: SimulationParameters(memberCount: memberCount, seed: seed,
                                                                     configuration: configuration), converged: true)
        simulation.run(until: 1_000)
        for index in 0..<memberCount where index % 2 == 1 { simulation.partitionGroup[index] = 1 }
        simulation.run(until: 1_000 + partitionMilliseconds)
        let deadAcross = simulation.nodes[0].instance.member(Simulation.id(1))?.status == .dead
            && simulation.nodes[1].instance.member(Simulation.id(0))?.status == .dead
        for index in 0..<memberCount { simulation.partitionGroup[index] = 0 }
        let healedAt = simulation.now
        var step = healedAt
        while step < healedAt + limitMilliseconds {
            step += 1_000
            simulation.run(until: step)
            if simulation.viewsAgree() {
                return Partition(convergedAfterHealMilliseconds: step - healedAt, sidesSawEachOtherDead: deadAcross)
            }
        }
        return Partition(convergedAfterHealMilliseconds: nil, sidesSawEachOtherDead: deadAcross)
    }
}
