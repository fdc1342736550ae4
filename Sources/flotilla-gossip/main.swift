// flotilla-gossip: runs one membership shell and prints every member change as a line.
//
//   flotilla-gossip --bind IP:PORT [--join IP:PORT,...] [--machine-id ID] [--metadata k=v ...]
//                   [--seed N] [--profile lan|fast-lan]
//
// --profile picks the membership timers: memberlist's LAN defaults (the default) or
// MembershipConfiguration.fastLAN (probe 500 ms, timeout 250 ms, suspicion multiplier 3).
//
// Output (stdout, flushed per line), one event per line, with the wall clock in milliseconds so
// that lines from several machines can be compared:
//   started <id> <host:port> seed=<seed> t=<unix-ms>
//   alive|suspect|dead|left <id> <host:port> inc=<incarnation> from=<previous|new> t=<unix-ms>
//   forgotten <id> t=<unix-ms>
//   stopped <the shell's counters> t=<unix-ms>          (last line, after a leave)
// SIGTERM or SIGINT: leave gracefully, then exit 0.
import Dispatch
import Membership
import MembershipShell
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

struct Arguments {
    var bind: MemberAddress?
    var seeds: [MemberAddress] = []
    var machineID: MemberID?
    var metadata: [String: String] = [:]
    var seed: UInt64?
    var membership: MembershipConfiguration = .lan
}

func fail(_ message: String) -> Never {
    let text = "flotilla-gossip: \(message)\n"
    _ = text.withCString { write(2, $0, strlen($0)) }
    exit(2)
}

/// `IP:PORT` or `[IPv6]:PORT`.
func parseAddress(_ text: String) -> MemberAddress? {
    var host: Substring
    var port: Substring
    if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
        host = text[text.index(after: text.startIndex)..<close]
        let rest = text[text.index(after: close)...]
        guard rest.hasPrefix(":") else { return nil }
        port = rest.dropFirst()
    } else {
        guard let colon = text.lastIndex(of: ":") else { return nil }
        host = text[..<colon]
        port = text[text.index(after: colon)...]
    }
    guard !host.isEmpty, host.utf8.count <= MemberAddress.hostBytesMax, let number = UInt16(port) else { return nil }
    return MemberAddress(host: String(host), port: number)
}

func parseArguments(_ arguments: [String]) -> Arguments {
    var parsed = Arguments()
    var index = 0
    func value(_ flag: String) -> String {
        index += 1
        guard index < arguments.count else { fail("\(flag) needs a value") }
        return arguments[index]
    }
    while index < arguments.count {
        let flag = arguments[index]
        switch flag {
        case "--bind":
            let text = value(flag)
            guard let address = parseAddress(text) else { fail("--bind: expected IP:PORT, got \(text)") }
            parsed.bind = address
        case "--join":
            for text in value(flag).split(separator: ",") where !text.isEmpty {
                guard let address = parseAddress(String(text)) else { fail("--join: expected IP:PORT, got \(text)") }
                parsed.seeds.append(address)
            }
        case "--machine-id":
            do {
                parsed.machineID = try MachineID.parse(Array(value(flag).utf8), path: "--machine-id")
            } catch {
                fail("\(error)")
            }
        case "--metadata":
            for pair in value(flag).split(separator: ",") {
                guard let equals = pair.firstIndex(of: "="), equals != pair.startIndex else {
                    fail("--metadata: expected k=v, got \(pair)")
                }
                parsed.metadata[String(pair[..<equals])] = String(pair[pair.index(after: equals)...])
            }
        case "--seed":
            let text = value(flag)
            guard let seed = UInt64(text) else { fail("--seed: expected an unsigned integer, got \(text)") }
            parsed.seed = seed
        case "--profile":
            switch value(flag) {
            case "lan": parsed.membership = .lan
            case "fast-lan": parsed.membership = .fastLAN
            case let other: fail("--profile: expected lan or fast-lan, got \(other)")
            }
        case "--help", "-h":
            print("usage: flotilla-gossip --bind IP:PORT [--join IP:PORT,...] [--machine-id ID] [--metadata k=v,...] [--seed N] [--profile lan|fast-lan]")
            exit(0)
        default:
            fail("unknown argument \(flag)")
        }
        index += 1
    }
    return parsed
}

func wallClockMilliseconds() -> Int64 {
    var spec = timespec()
    clock_gettime(CLOCK_REALTIME, &spec)
    return Int64(spec.tv_sec) * 1_000 + Int64(spec.tv_nsec) / 1_000_000
}

func emit(_ line: String) {
    print("\(line) t=\(wallClockMilliseconds())")
    // stdout is a pipe to the journal under systemd: flush every line (nil: all streams).
    fflush(nil)
}

func line(for event: MembershipEvent) -> String {
    switch event {
    case .changed(let change):
        let member = change.member
        let previous = change.previousStatus.map { "\($0)" } ?? "new"
        return "\(member.status) \(member.id) \(member.address) inc=\(member.incarnation) from=\(previous)"
    case .forgotten(let id):
        return "forgotten \(id)"
    }
}

/// Leave on SIGTERM (systemctl stop) or SIGINT; the event stream then ends and we exit.
/// Nonisolated: the handlers run on a dispatch queue, not on the main actor.
nonisolated func leaveOnSignals(_ shell: MembershipShell) -> [any DispatchSourceSignal] {
    signal(SIGTERM, SIG_IGN)
    signal(SIGINT, SIG_IGN)
    return [SIGTERM, SIGINT].map { number in
        let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
        source.setEventHandler {
            Task {
                try? await shell.leave()
                await shell.stop()
            }
        }
        source.resume()
        return source
    }
}

let arguments = parseArguments(Array(CommandLine.arguments.dropFirst()))
guard let bind = arguments.bind else { fail("--bind IP:PORT is required") }
let memberID: MemberID
do {
    memberID = try arguments.machineID ?? MachineID.read()
} catch {
    fail("\(error)")
}
let configuration = MembershipShellConfiguration(
    bindHost: bind.host, bindPort: Int(bind.port), memberID: memberID,
    metadata: MemberMetadata(arguments.metadata), membership: arguments.membership, randomSeed: arguments.seed)

let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
let shell: MembershipShell
do {
    shell = try await MembershipShell.start(configuration: configuration, eventLoop: group.next())
    try await shell.join(seeds: arguments.seeds)
} catch {
    fail("\(error)")
}
emit("started \(memberID) \(shell.localAddress) seed=\(shell.randomSeed)")

let signalSources = leaveOnSignals(shell)
for await event in shell.memberEvents {
    emit(line(for: event))
}
let counters = await shell.counters()
emit("stopped \(counters)")
try? await group.shutdownGracefully()
withExtendedLifetime(signalSources) {}
exit(0)
