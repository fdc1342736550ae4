import Membership

// A seeded, single-threaded simulation of a whole membership cluster: one event queue, a
// simulated clock, and a network with latency, loss, partitions and slow members. Everything is
// drawn from one seed, so `SIM_SEED=n` replays a run exactly. The MembershipSimulationTests import
// this file through `@testable import flotilla_bench_membership`.

struct SimulationParameters {
    var memberCount: Int
    var seed: UInt64
    var configuration: MembershipConfiguration = .lan
    /// One-way latency, uniform in this range (a LAN).
    var latencyMilliseconds: ClosedRange<Int64> = 1...5
    /// Probability that a datagram is lost (streams are reliable, as TCP).
    var lossProbability: Double = 0
}

/// What the observers saw, derived from the directives only (the core records no metrics).
struct SimulationObservations {
    /// A member declared dead by some observer while it was not crashed: (observer, subject, time).
    var falsePositives: [(observer: Int, subject: Int, at: Int64)] = []
    /// For each crashed member: the times at which each live member first saw it dead.
    var deathSeenAt: [Int: [Int64]] = [:]
    /// For each crashed member: the times at which each live member first saw it suspect or dead
    /// (SWIM's "detected": it knows something is wrong), one entry per observer.
    var knownFailedAt: [Int: [Int64]] = [:]
    /// For each crashed member, which observers are already in `knownFailedAt`.
    var knownFailedBy: [Int: [Bool]] = [:]
    var datagramsSent = 0
    var streamsSent = 0
    var datagramBytesMax = 0
    /// The encoded bytes of every datagram sent (the codec's exact size, without encoding).
    var datagramBytesSent = 0
    /// For members whose data changed: when each observer first saw the new incarnation.
    var updateSeenAt: [Int: [Int64]] = [:]
}

struct Simulation {
    struct Node {
        var instance: MembershipInstance
        var crashed = false
        var timerGeneration: UInt32 = 0
        /// Alive or suspect members this node knows, excluding itself.
        var activeKnown = 0
    }

    struct Event: Comparable {
        var at: Int64
        var serial: UInt64
        var node: Int32
        var from: Int32
        /// Timer events carry a generation, deliveries a message.
        var generation: UInt32
        var message: MembershipMessage?

        static func < (lhs: Event, rhs: Event) -> Bool { (lhs.at, lhs.serial) < (rhs.at, rhs.serial) }
        static func == (lhs: Event, rhs: Event) -> Bool { lhs.serial == rhs.serial }
    }

    let parameters: SimulationParameters
    var nodes: [Node] = []
    var addresses: [MemberAddress] = []
    var indexByAddress: [MemberAddress: Int] = [:]
    var queue = EventHeap()
    var serial: UInt64 = 0
    var now: Int64 = 0
    var random: MembershipRandom
    var observations = SimulationObservations()
    /// Partition group of each member; messages between different groups are dropped.
    var partitionGroup: [Int]
    /// Extra one-way delay, uniform in 0...value, on every message to or from a slow member.
    var slowDelayMilliseconds: [Int: Int64] = [:]

    static func id(_ index: Int) -> MemberID { MemberID("machine-\(index)") }
    static func address(_ index: Int) -> MemberAddress {
        MemberAddress(host: "10.\(index / 65_536).\(index / 256 % 256).\(index % 256)", port: 7946)
    }

    static func member(_ index: Int) -> Member {
        Member(id: id(index), address: address(index), metadata: MemberMetadata(["rack": "r\(index % 16)"]),
               role: index < 5 ? .voter : .agent, version: "0.1.0")
    }

    /// `converged`: every member starts knowing every other (a restored table), else alone.
    init(parameters: SimulationParameters, converged: Bool) {
        self.parameters = parameters
        random = MembershipRandom(seed: parameters.seed)
        partitionGroup = Array(repeating: 0, count: parameters.memberCount)
        let everyone = converged ? (0..<parameters.memberCount).map(Self.member) : []
        for index in 0..<parameters.memberCount {
            let instance = try! MembershipInstance(
                localMember: Self.member(index), configuration: parameters.configuration,
                random: MembershipRandom(seed: parameters.seed &* 0x9E37_79B9 &+ UInt64(index)),
                now: .zero, knownMembers: everyone)
            nodes.append(Node(instance: instance, activeKnown: converged ? parameters.memberCount - 1 : 0))
            addresses.append(Self.address(index))
            indexByAddress[Self.address(index)] = index
        }
        for index in nodes.indices { scheduleTimer(index, at: nodes[index].instance.nextDeadline.milliseconds) }
    }

    // MARK: Driving

    mutating func join(_ index: Int, seeds: [Int]) {
        let directives = nodes[index].instance.join(seeds: seeds.map { addresses[$0] }, now: MonotonicInstant(milliseconds: now))
        for directive in directives {
            switch directive {
            case .send(let message, let to): send(message, from: index, to: to)
            case .scheduleTick(let at): scheduleTimer(index, at: at.milliseconds)
            }
        }
    }

    /// Changes a member's metadata (a new incarnation) and starts tracking who has seen it.
    mutating func updateMetadata(_ index: Int) {
        observations.updateSeenAt[index] = []
        let directives = try! nodes[index].instance.updateLocalMember(
            metadata: MemberMetadata(["rack": "moved"]), now: MonotonicInstant(milliseconds: now))
        for directive in directives {
            switch directive {
            case .send(let message, let to): send(message, from: index, to: to)
            case .scheduleTick(let at): scheduleTimer(index, at: at.milliseconds)
            }
        }
    }

    mutating func crash(_ index: Int) {
        nodes[index].crashed = true
        observations.deathSeenAt[index] = []
        observations.knownFailedAt[index] = []
        observations.knownFailedBy[index] = Array(repeating: false, count: nodes.count)
    }

    /// Runs events until `end` or until `stop` holds (checked after each event).
    mutating func run(until end: Int64, stop: (Simulation) -> Bool = { _ in false }) {
        while let next = queue.peek, next.at <= end {
            let event = queue.pop()!
            now = event.at
            process(event)
            if stop(self) { return }
        }
        now = max(now, end)
    }

    mutating func process(_ event: Event) {
        let index = Int(event.node)
        guard !nodes[index].crashed else { return }
        let instant = MonotonicInstant(milliseconds: now)
        if let message = event.message {
            for directive in nodes[index].instance.onMessage(message, from: addresses[Int(event.from)], now: instant) {
                switch directive {
                case .send(let message, let to): send(message, from: index, to: to)
                case .memberChanged(let change): observe(change, by: index)
                case .scheduleTick(let at): scheduleTimer(index, at: at.milliseconds)
                }
            }
        } else {
            guard event.generation == nodes[index].timerGeneration else { return }
            for directive in nodes[index].instance.onTick(now: instant) {
                switch directive {
                case .send(let message, let to): send(message, from: index, to: to)
                case .memberChanged(let change): observe(change, by: index)
                case .memberForgotten: break
                case .scheduleTick(let at): scheduleTimer(index, at: at.milliseconds)
                }
            }
        }
    }

    mutating func scheduleTimer(_ index: Int, at: Int64) {
        nodes[index].timerGeneration &+= 1
        serial += 1
        queue.push(Event(at: max(at, now), serial: serial, node: Int32(index), from: -1,
                         generation: nodes[index].timerGeneration, message: nil))
    }

    mutating func send(_ message: MembershipMessage, from: Int, to address: MemberAddress) {
        if message.isStream {
            observations.streamsSent += 1
        } else {
            observations.datagramsSent += 1
            // The codec's exact size (CodecTests check it against the encoding) without encoding.
            let bytes = MembershipCodec.encodedBytes(of: message)
            observations.datagramBytesMax = max(observations.datagramBytesMax, bytes)
            observations.datagramBytesSent += bytes
        }
        guard let to = indexByAddress[address] else { return }
        guard partitionGroup[from] == partitionGroup[to] else { return }
        if !message.isStream && parameters.lossProbability > 0
            && Double(random.next() >> 11) / Double(1 << 53) < parameters.lossProbability {
            return
        }
        let latency = parameters.latencyMilliseconds
        var delay = latency.lowerBound + Int64(random.below(Int(latency.upperBound - latency.lowerBound) + 1))
        if let slow = slowDelayMilliseconds[from] { delay += Int64(random.below(Int(slow) + 1)) }
        if let slow = slowDelayMilliseconds[to] { delay += Int64(random.below(Int(slow) + 1)) }
        serial += 1
        queue.push(Event(at: now + delay, serial: serial, node: Int32(to), from: Int32(from), generation: 0, message: message))
    }

    mutating func observe(_ change: MemberChange, by observer: Int) {
        let wasActive = change.previousStatus?.isActive ?? false
        if wasActive != change.member.status.isActive { nodes[observer].activeKnown += change.member.status.isActive ? 1 : -1 }
        if change.member.status == .alive, change.previousStatus == .alive,
           let subject = subjectIndex(change.member.id), observations.updateSeenAt[subject] != nil {
            observations.updateSeenAt[subject]!.append(now)
        }
        guard !change.member.status.isActive || change.member.status == .suspect,
              let subject = subjectIndex(change.member.id) else { return }
        if nodes[subject].crashed, observations.knownFailedBy[subject]?[observer] == false {
            observations.knownFailedBy[subject]![observer] = true
            observations.knownFailedAt[subject]!.append(now)
        }
        guard change.member.status == .dead else { return }
        if nodes[subject].crashed {
            observations.deathSeenAt[subject, default: []].append(now)
        } else {
            observations.falsePositives.append((observer, subject, now))
        }
    }

    func subjectIndex(_ id: MemberID) -> Int? {
        Int(id.rawValue.dropFirst("machine-".count))
    }

    // MARK: Questions

    var liveIndices: [Int] { nodes.indices.filter { !nodes[$0].crashed } }

    /// Every live member sees every other live member as alive or suspect.
    var allKnowAll: Bool {
        let live = nodes.count - nodes.filter(\.crashed).count
        return nodes.allSatisfy { $0.crashed || $0.activeKnown >= live - 1 }
    }

    /// Every live member has seen `subject` dead.
    func allSeeDead(_ subject: Int) -> Bool {
        (observations.deathSeenAt[subject]?.count ?? 0) >= nodes.count - nodes.filter(\.crashed).count
    }

    /// Every member in `observers` sees every member in `subjects` with `status`.
    func allSee(_ subjects: [Int], as status: MemberStatus, from observers: [Int]) -> Bool {
        observers.allSatisfy { observer in
            subjects.allSatisfy { nodes[observer].instance.member(Self.id($0))?.status == status }
        }
    }

    /// Every live member sees every live member alive at the same incarnation and no one else active.
    func viewsAgree() -> Bool {
        let live = liveIndices
        for observer in live {
            for subject in live where subject != observer {
                guard nodes[observer].instance.member(Self.id(subject))?.status == .alive else { return false }
            }
        }
        return true
    }
}

/// A binary min-heap of events (the standard library has none).
struct EventHeap {
    private var items: [Simulation.Event] = []

    var peek: Simulation.Event? { items.first }
    var count: Int { items.count }

    mutating func push(_ event: Simulation.Event) {
        items.append(event)
        var child = items.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard items[child] < items[parent] else { break }
            items.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> Simulation.Event? {
        guard !items.isEmpty else { return nil }
        items.swapAt(0, items.count - 1)
        let top = items.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var smallest = parent
            if left < items.count && items[left] < items[smallest] { smallest = left }
            if right < items.count && items[right] < items[smallest] { smallest = right }
            if smallest == parent { break }
            items.swapAt(parent, smallest)
            parent = smallest
        }
        return top
    }
}

/// Nearest-rank percentile of a sorted list.
func percentile(_ sorted: [Int64], _ fraction: Double) -> Int64 {
    guard !sorted.isEmpty else { return -1 }
    let rank = ceilPositive(fraction * Double(sorted.count)) - 1
    return sorted[min(max(rank, 0), sorted.count - 1)]
}

func ceilPositive(_ x: Double) -> Int {
    let truncated = Int(x)
    return Double(truncated) < x ? truncated + 1 : truncated
}
