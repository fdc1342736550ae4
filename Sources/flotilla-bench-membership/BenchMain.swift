import Membership

/// `flotilla-bench-membership [sizes...] [--seed n]`: runs the membership simulation with
/// memberlist's LAN defaults and prints the figures as Markdown table rows.
/// Contrib/bench/membership builds it in release and runs it.
@main
struct BenchMain {
    static func main() {
        var arguments = Array(CommandLine.arguments.dropFirst())
        var seed: UInt64 = 1
        if let flag = arguments.firstIndex(of: "--seed"), flag + 1 < arguments.count {
            seed = UInt64(arguments[flag + 1]) ?? 1
            arguments.removeSubrange(flag...(flag + 1))
        }
        let sizes = arguments.compactMap { Int($0) }
        print("seed \(seed); memberlist LAN defaults (probe 1 s / timeout 500 ms, 3 indirect, suspicion ×4 max ×6, retransmit ×4, gossip 200 ms × 3, push-pull 30 s)")
        print("")
        print("| members | crash seen dead by each member p50 / p99, s | crash seen by all (worst of crashes), s | update reached all (worst), s | datagrams per member per s | largest datagram, B | mass join through one seed until all know all, s | false positives with 5% loss (declarations / members affected, over 120 s) |")
        print("|---|---|---|---|---|---|---|---|")
        for size in sizes.isEmpty ? [100, 1_000, 10_000] : sizes {
            let crashes = size >= 10_000 ? 3 : 5
            let crash = Scenarios.crashDetection(memberCount: size, seed: seed, crashes: crashes)
            let sorted = crash.detectionMilliseconds.sorted()
            let allSeen = crash.allDetectedMilliseconds.map { $0.map { seconds($0) } ?? "not within 30 s" }
            let worstAll = crash.allDetectedMilliseconds.contains(where: { $0 == nil })
                ? "not within 30 s" : seconds(crash.allDetectedMilliseconds.compactMap { $0 }.max() ?? -1)
            let worstUpdate = crash.disseminationMilliseconds.contains(where: { $0 == nil })
                ? "not within 30 s" : seconds(crash.disseminationMilliseconds.compactMap { $0 }.max() ?? -1)
            _ = allSeen
            let join = size >= 10_000 ? nil : Scenarios.massJoin(memberCount: size, seed: seed)
            let joinText = join.map { $0.allKnowAllMilliseconds.map(seconds) ?? "not within 600 s" } ?? "not run"
            let lossy = Scenarios.falsePositives(memberCount: size, seed: seed, durationMilliseconds: 120_000,
                                                 lossProbability: 0.05)
            print("| \(size) | \(seconds(percentile(sorted, 0.5))) / \(seconds(percentile(sorted, 0.99))) | \(worstAll) | \(worstUpdate) | \(String(format2(crash.datagramsPerMemberPerSecond))) | \(crash.datagramBytesMax) | \(joinText) | \(lossy.declarations) / \(lossy.membersAffected) |")
        }
        print("")
        let slow = Scenarios.falsePositives(memberCount: 1_000, seed: seed, durationMilliseconds: 120_000, lossProbability: 0,
                                            slowMembers: [7], slowDelayMilliseconds: 1_500)
        print("Delayed member (1,000 members, messages to/from one member delayed up to 1.5 s each way, 120 s): \(slow.declarations) false declarations about healthy members, \(slow.slowMemberDeclarations) about the slow member.")
        let partition = Scenarios.partitionHeals(memberCount: 1_000, seed: seed, partitionMilliseconds: 60_000)
        print("Partition (1,000 members, halves cut for 60 s): each side saw the other dead: \(partition.sidesSawEachOtherDead); all views agree \(partition.convergedAfterHealMilliseconds.map(seconds) ?? "not within 300") s after the heal.")
    }

    static func seconds(_ milliseconds: Int64) -> String { format2(Double(milliseconds) / 1_000) }
}

/// Two decimals without Foundation.
func format2(_ value: Double) -> String {
    let hundredths = Int64(value * 100 + (value < 0 ? -0.5 : 0.5))
    let fraction = abs(hundredths % 100)
    return "\(hundredths / 100).\(fraction < 10 ? "0" : "")\(fraction)"
}
