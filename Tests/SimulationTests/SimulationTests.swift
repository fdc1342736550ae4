#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Raft
import Testing

/// Randomised whole-cluster runs of the Raft core: 3, 5 and 7 nodes (the seed picks which),
/// with message loss, duplication, delay and reordering, partitions, crashes that lose unsynced
/// writes, membership changes, leadership transfers and snapshots; see `Simulation`.
///
/// `SIM_SEEDS=n` runs seeds 0..<n (default `defaultSeedCount`); `SIM_SEED=n` replays exactly seed n
/// and prints its statistics. A failure reports its seed, its parameters and its last events.
@Suite struct SimulationTests {
    static let defaultSeedCount = 1_020
    /// Seeds are spread over this many test cases so that Swift Testing runs them in parallel.
    static let shardCount = 6

    static func environmentInteger(_ name: String) -> UInt64? {
        guard let value = getenv(name) else { return nil }
        return UInt64(String(cString: value))
    }

    @Test(arguments: 0..<shardCount)
    func randomisedClustersStaySafeAndConverge(shard: Int) throws {
        if let seed = Self.environmentInteger("SIM_SEED") {
            guard shard == 0 else { return }
            var simulation = Simulation(parameters: SimulationParameters(seed: seed))
            do {
                let statistics = try simulation.run()
                print("seed \(seed) passed: \(simulation.parameters)\n\(statistics)")
            } catch {
                Issue.record("\(error)")
            }
            return
        }
        let seedCount = Self.environmentInteger("SIM_SEEDS") ?? UInt64(Self.defaultSeedCount)
        var seed = UInt64(shard)
        var failures = 0
        while seed < seedCount && failures < 3 {
            var simulation = Simulation(parameters: SimulationParameters(seed: seed))
            do {
                _ = try simulation.run()
            } catch {
                Issue.record("\(error)")
                failures += 1
            }
            seed += UInt64(Self.shardCount)
        }
    }
}
