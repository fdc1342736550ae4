/// Membership updates waiting to be piggybacked (SWIM §4.1), memberlist's TransmitLimitedQueue.
///
/// Each update goes out at most `retransmitLimit` times. The least transmitted go first (fresh
/// news spreads fastest), newest first among equals. A newer update about a member replaces the
/// older one, so the queue holds at most one update per member. Bounded by `capacity`: when full,
/// the most transmitted and oldest update is dropped (periodic push-pull repairs what is lost).
struct BroadcastQueue {
    private struct Entry {
        var gossip: Gossip
        var bytes: Int
        /// Increases with every enqueue; used to find stale entries after replacement.
        var serial: UInt64
    }

    /// `buckets[t]` holds the entries transmitted `t` times, oldest first.
    private var buckets: [[Entry]] = [[]]
    /// The live serial for each subject; an entry whose serial differs is stale.
    private var liveSerials: [MemberID: UInt64] = [:]
    private var nextSerial: UInt64 = 0
    let capacity: Int

    init(capacity: Int) {
        precondition(capacity > 0, "BroadcastQueue capacity \(capacity)")
        self.capacity = capacity
    }

    var count: Int { liveSerials.count }
    var isEmpty: Bool { liveSerials.isEmpty }

    mutating func enqueue(_ gossip: Gossip) {
        nextSerial += 1
        liveSerials[gossip.subject] = nextSerial
        buckets[0].append(Entry(gossip: gossip, bytes: MembershipCodec.encodedBytes(of: gossip), serial: nextSerial))
        if liveSerials.count > capacity { dropOne() }
        // Stale entries are only removed lazily; compact when they dominate so memory stays bounded.
        if buckets.reduce(0, { $0 + $1.count }) > 4 * capacity { compact() }
    }

    /// Takes updates that fit in `budgetBytes`, counts one transmission for each, and drops those
    /// that reached `transmitLimit`. Returns them in the order chosen.
    mutating func take(budgetBytes: Int, transmitLimit: Int) -> [Gossip] {
        guard !liveSerials.isEmpty, budgetBytes > 0 else { return [] }
        var remaining = budgetBytes
        var chosen: [Gossip] = []
        var moved: [(transmits: Int, entry: Entry)] = []
        // Scan a bounded number of entries so one call stays cheap on a long queue.
        var scanned = 0
        let scanMax = 512
        bucketLoop: for transmits in buckets.indices {
            var index = buckets[transmits].count - 1
            while index >= 0 {
                if remaining < 8 || scanned >= scanMax { break bucketLoop }
                scanned += 1
                let entry = buckets[transmits][index]
                if liveSerials[entry.gossip.subject] != entry.serial {
                    buckets[transmits].remove(at: index)
                } else if entry.bytes <= remaining {
                    remaining -= entry.bytes
                    chosen.append(entry.gossip)
                    buckets[transmits].remove(at: index)
                    moved.append((transmits + 1, entry))
                }
                index -= 1
            }
        }
        for (transmits, entry) in moved {
            if transmits >= transmitLimit {
                liveSerials[entry.gossip.subject] = nil
                continue
            }
            while buckets.count <= transmits { buckets.append([]) }
            // Keep oldest-first order within a bucket: entries moved now are the newest there.
            buckets[transmits].insert(entry, at: insertionIndex(in: buckets[transmits], serial: entry.serial))
        }
        return chosen
    }

    /// The pending update about `subject`, if any (for tests and the buddy system).
    func pending(about subject: MemberID) -> Gossip? {
        guard let serial = liveSerials[subject] else { return nil }
        for bucket in buckets {
            if let entry = bucket.first(where: { $0.serial == serial }) { return entry.gossip }
        }
        return nil
    }

    private func insertionIndex(in bucket: [Entry], serial: UInt64) -> Int {
        var low = 0
        var high = bucket.count
        while low < high {
            let mid = (low + high) / 2
            if bucket[mid].serial < serial { low = mid + 1 } else { high = mid }
        }
        return low
    }

    private mutating func dropOne() {
        for transmits in buckets.indices.reversed() {
            while let entry = buckets[transmits].first {
                buckets[transmits].removeFirst()
                if liveSerials[entry.gossip.subject] == entry.serial {
                    liveSerials[entry.gossip.subject] = nil
                    return
                }
            }
        }
    }

    private mutating func compact() {
        for transmits in buckets.indices {
            buckets[transmits].removeAll { liveSerials[$0.gossip.subject] != $0.serial }
        }
    }
}
