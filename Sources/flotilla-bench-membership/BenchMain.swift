#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Membership

/// `flotilla-bench-membership [sizes...] [--seed n] [--profile lan|fast-lan] [--crashes n]
/// [--loss fraction] [--delay ms] [--only crash,loss,join,delay,partition,isolate]`: runs the membership simulation and prints
/// Markdown tables. Contrib/bench/membership builds it in release and runs it.
///
/// Every figure is named for exactly what it measures (see `Scenarios.CrashDetection`): "first
/// suspicion" is SWIM's detection, "all know" is every live member holding the crashed member
/// suspect or dead, "all declared dead" includes Lifeguard's suspicion timeout.
@main
struct BenchMain {
    static func main() {
        var options = Options(arguments: Array(CommandLine.arguments.dropFirst()))
        if options.sizes.isEmpty { options.sizes = [100, 1_000, 10_000] }
        let configuration = options.profile == "fast-lan" ? MembershipConfiguration.fastLAN : MembershipConfiguration.lan
        print("seed \(options.seed); profile \(options.profile): \(describe(configuration)); LAN latency 1-5 ms one way")
        print("")
        var detectionRows: [String] = []
        var costRows: [String] = []
        for size in options.sizes {
            resetPeakResident()
            let crashes = options.crashes ?? (size >= 10_000 ? 3 : size >= 1_000 ? 10 : 20)
            var crash: Scenarios.CrashDetection?
            if options.runs("crash") {
                progress("\(size) members: \(crashes) crashes")
                crash = Scenarios.crashDetection(memberCount: size, seed: options.seed, crashes: crashes,
                                                 configuration: configuration)
            }
            var joinText = "not run"
            if options.runs("join") && size <= 1_000 {
                progress("\(size) members: mass join")
                let join = Scenarios.massJoin(memberCount: size, seed: options.seed, configuration: configuration)
                joinText = join.allKnowAllMilliseconds.map(seconds) ?? "not within 600 s"
            }
            var lossText = "not run"
            if options.runs("loss") {
                progress("\(size) members: \(options.lossPercent) % loss, 120 s")
                let lossy = Scenarios.falsePositives(memberCount: size, seed: options.seed, durationMilliseconds: 120_000,
                                                     lossProbability: options.loss, configuration: configuration)
                lossText = "\(lossy.declarations) / \(lossy.membersAffected) / \(format2(lossy.declarationsPerMemberHour))"
            }
            let peak = peakResidentMegabytes()
            if let crash {
                detectionRows.append("| \(size) | \(crashes) | \(spread(crash.firstSuspicionMilliseconds)) | \(spread(crash.allKnowMilliseconds)) | \(spread(crash.allDeadMilliseconds)) | \(spread(crash.deadPerObserverMilliseconds.map { Optional($0) })) | \(spread(crash.disseminationMilliseconds)) |")
                costRows.append("| \(size) | \(format2(crash.datagramsPerMemberPerSecond)) | \(Int(crash.datagramBytesPerMemberPerSecond + 0.5)) | \(crash.datagramBytesMax) | \(format2(crash.streamsPerMemberPerSecond * 60)) | \(joinText) | \(lossText) | \(peak) |")
            } else {
                costRows.append("| \(size) | not run | not run | not run | not run | \(joinText) | \(lossText) | \(peak) |")
            }
            progress("\(size) members done; peak RSS \(peak) MB")
        }
        print("Crash detection (converged cluster, one crash and one metadata change every 30 s; times from the crash, s, p50 / p99 nearest rank over the crashes, so with few crashes p99 is the worst one):")
        print("")
        print("| members | crashes | first suspicion by any member | all live members know (suspect or dead) | all live members declared dead | declared dead, per observer | metadata update reached all |")
        print("|---|---|---|---|---|---|---|")
        for row in detectionRows { print(row) }
        print("")
        print("Cost and false positives:")
        print("")
        print("| members | datagrams per member per s | datagram bytes per member per s | largest datagram, B | push-pull streams per member per min | mass join through one seed until all know all, s | \(options.lossPercent) % datagram loss, 120 s: false declarations / healthy members affected / declarations per member-hour | peak RSS of the run, MB |")
        print("|---|---|---|---|---|---|---|---|")
        for row in costRows { print(row) }
        print("")
        let largest = options.sizes.filter { $0 <= 1_000 }.max() ?? 1_000
        if options.runs("delay") {
            progress("delayed member, \(largest) members")
            let slow = Scenarios.falsePositives(memberCount: largest, seed: options.seed, durationMilliseconds: 120_000,
                                                lossProbability: 0, slowMembers: [7], slowDelayMilliseconds: options.delayMilliseconds,
                                                configuration: configuration)
            print("- Delayed member (\(largest) members, every message to or from one member delayed by up to \(seconds(options.delayMilliseconds)) s each way, 120 s): \(slow.declarations) false declarations about healthy members, \(slow.slowMemberDeclarations) about the slow member.")
        }
        if options.runs("partition") {
            progress("partition, \(largest) members")
            let partition = Scenarios.partitionHeals(memberCount: largest, seed: options.seed, partitionMilliseconds: 60_000,
                                                     configuration: configuration)
            print("- Partition (\(largest) members, halves cut for 60 s): each side saw the other dead: \(partition.sidesSawEachOtherDead); the other half seen alive by all \(partition.cutOffSeenAliveAfterHealMilliseconds.map(seconds) ?? "not within 300") s and all views agree \(partition.convergedAfterHealMilliseconds.map(seconds) ?? "not within 300") s after the heal (checked every 1 s).")
        }
        if options.runs("isolate") {
            // The test bed's scenario: one machine of five cut off until the others hold it dead
            // (it still suspects them), then healed; and the same cut held for 60 s (it holds
            // everyone dead by then).
            for (label, long) in [("until the others declare it dead", false), ("for 60 s", true)] {
                progress("isolated member, 5 members, 20 seeds, cut \(label)")
                var rejoin: [Int64?] = []
                var agree: [Int64?] = []
                var cuts: [Int64?] = []
                var cutOffSawHomeDead = 0
                for offset in 0..<UInt64(20) {
                    let result = Scenarios.partitionHeals(memberCount: 5, seed: options.seed &+ offset,
                                                          partitionMilliseconds: 60_000, cutOff: [4],
                                                          healOnceDeclaredDead: !long, limitMilliseconds: 120_000,
                                                          checkEveryMilliseconds: 100, configuration: configuration)
                    guard result.homeSawCutOffDead else {
                        rejoin.append(nil)
                        agree.append(nil)
                        continue
                    }
                    cuts.append(result.partitionMilliseconds)
                    if result.cutOffSawHomeDead { cutOffSawHomeDead += 1 }
                    rejoin.append(result.cutOffSeenAliveAfterHealMilliseconds)
                    agree.append(result.convergedAfterHealMilliseconds)
                }
                print("- Isolated member (5 members, one cut off \(label): cut lasted p50 / p99 \(spread(cuts)) s; it held all others dead at the heal in \(cutOffSawHomeDead) of 20 seeds from \(options.seed); checked every 0.1 s): after the heal, the others all see it alive p50 / p99 \(spread(rejoin)) s; all views agree \(spread(agree)) s.")
            }
        }
    }

    struct Options {
        var sizes: [Int] = []
        var seed: UInt64 = 1
        var profile = "lan"
        var crashes: Int?
        var only: Set<String>?
        /// Datagram loss in the false-positive run, and the delayed member's extra delay each way.
        var loss = 0.05
        var delayMilliseconds: Int64 = 1_500

        var lossPercent: String { format2(loss * 100) }

        init(arguments: [String]) {
            var remaining = arguments[...]
            while let argument = remaining.popFirst() {
                switch argument {
                case "--seed": seed = remaining.popFirst().flatMap { UInt64($0) } ?? 1
                case "--profile": profile = remaining.popFirst() ?? "lan"
                case "--crashes": crashes = remaining.popFirst().flatMap { Int($0) }
                case "--loss": loss = remaining.popFirst().flatMap { Double($0) } ?? 0.05
                case "--delay": delayMilliseconds = remaining.popFirst().flatMap { Int64($0) } ?? 1_500
                case "--only": only = Set((remaining.popFirst() ?? "").split(separator: ",").map(String.init))
                default: if let size = Int(argument) { sizes.append(size) }
                }
            }
            precondition(profile == "lan" || profile == "fast-lan", "--profile lan or fast-lan, not \(profile)")
        }

        func runs(_ scenario: String) -> Bool { only?.contains(scenario) ?? true }
    }

    static func describe(_ c: MembershipConfiguration) -> String {
        "probe \(c.probeIntervalMilliseconds) ms / timeout \(c.probeTimeoutMilliseconds) ms, \(c.indirectChecks) indirect, suspicion ×\(c.suspicionMultiplier) max ×\(c.suspicionMaxTimeoutMultiplier), retransmit ×\(c.retransmitMultiplier), gossip \(c.gossipIntervalMilliseconds) ms × \(c.gossipNodes), push-pull \(c.pushPullIntervalMilliseconds / 1_000) s, reconnect \(c.reconnectIntervalMilliseconds / 1_000) s"
    }

    /// "p50 / p99" of the values, or how many were missing (nil: not within the window).
    static func spread(_ values: [Int64?]) -> String {
        let missing = values.count(where: { $0 == nil })
        let sorted = values.compactMap { $0 }.sorted()
        guard !sorted.isEmpty else { return "none of \(values.count)" }
        let text = "\(seconds(percentile(sorted, 0.5))) / \(seconds(percentile(sorted, 0.99)))"
        return missing == 0 ? text : "\(text) (\(missing) of \(values.count) not within the window)"
    }

    static func seconds(_ milliseconds: Int64) -> String { format2(Double(milliseconds) / 1_000) }

    /// Progress on standard error (descriptor 2), so standard output stays the Markdown.
    static func progress(_ text: String) {
        let line = Array("\(text)\n".utf8)
        _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    }

    /// Linux: writing 5 to clear_refs resets the peak resident set size (VmHWM) of the process,
    /// so each size reports its own peak rather than the largest so far.
    static func resetPeakResident() {
        guard let file = fopen("/proc/self/clear_refs", "w") else { return }
        fputs("5", file)
        fclose(file)
    }

    /// VmHWM from /proc/self/status, in MB (nil off Linux).
    static func peakResidentMegabytes() -> String {
        guard let file = fopen("/proc/self/status", "r") else { return "unknown" }
        defer { fclose(file) }
        var buffer = [CChar](repeating: 0, count: 256)
        while fgets(&buffer, Int32(buffer.count), file) != nil {
            let line = String(cString: buffer)
            guard line.hasPrefix("VmHWM:") else { continue }
            let kilobytes = Int(line.dropFirst(6).filter { $0.isNumber }) ?? 0
            return "\(kilobytes / 1_024)"
        }
        return "unknown"
    }
}

/// Two decimals without Foundation.
func format2(_ value: Double) -> String {
    let hundredths = Int64(value * 100 + (value < 0 ? -0.5 : 0.5))
    let fraction = abs(hundredths % 100)
    return "\(hundredths / 100).\(fraction < 10 ? "0" : "")\(fraction)"
}
