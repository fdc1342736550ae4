/// Finds a member's position in `MembershipInstance.records` by ID: an open-addressing hash table
/// with linear probing whose slots hold only 32-bit positions (the IDs are read from the records).
///
/// Why not `[MemberID: Int]`: its buckets hold a 16-byte key and an 8-byte value, about 400 KB
/// per instance at 10,000 members, and the simulation holds one table per member (4 GB at
/// 10,000); this one is 64 KB per instance there. Positions are looked up, never iterated, so
/// the per-process hash seed changes slot placement only, never what the core does.
struct MemberIndex: Sendable {
    /// Record positions, or -1 for an empty slot. The count is a power of two and at most three
    /// quarters of the slots are used, so probe sequences stay short.
    private var slots: [Int32]
    private(set) var count = 0

    init(capacity: Int = 0) {
        slots = Array(repeating: -1, count: Self.slotCount(for: capacity))
    }

    static func slotCount(for count: Int) -> Int {
        var slotCount = 8
        while slotCount * 3 < count * 4 { slotCount *= 2 }
        return slotCount
    }

    private var mask: Int { slots.count - 1 }

    private func home(of id: MemberID) -> Int { id.hashValue & mask }

    func find(_ id: MemberID, in records: [MemberRecord]) -> Int? {
        var slot = home(of: id)
        while true {
            let position = slots[slot]
            if position < 0 { return nil }
            if records[Int(position)].member.id == id { return Int(position) }
            slot = (slot + 1) & mask
        }
    }

    /// Indexes the record at `position`, which `records` already holds; its ID must not be indexed yet.
    mutating func insert(position: Int, in records: [MemberRecord]) {
        precondition(position <= Int(Int32.max), "member table position \(position) beyond Int32")
        if (count + 1) * 4 > slots.count * 3 { grow(records: records) }
        var slot = home(of: records[position].member.id)
        while slots[slot] >= 0 { slot = (slot + 1) & mask }
        slots[slot] = Int32(position)
        count += 1
    }

    /// Unindexes the record at `position` (still in `records`), shifting later entries of its
    /// probe run back so that no lookup stops early at the emptied slot (Knuth's Algorithm R).
    mutating func remove(position: Int, in records: [MemberRecord]) {
        var slot = home(of: records[position].member.id)
        while slots[slot] != Int32(position) {
            precondition(slots[slot] >= 0, "position \(position) is not indexed")
            slot = (slot + 1) & mask
        }
        slots[slot] = -1
        count -= 1
        var next = (slot + 1) & mask
        while slots[next] >= 0 {
            let wanted = home(of: records[Int(slots[next])].member.id)
            // The entry at `next` may move into the hole unless its home lies cyclically in (slot, next].
            let stays = slot <= next ? (slot < wanted && wanted <= next) : (slot < wanted || wanted <= next)
            if !stays {
                slots[slot] = slots[next]
                slots[next] = -1
                slot = next
            }
            next = (next + 1) & mask
        }
    }

    /// The record of `id` moved from `old` to `new` in `records` (a swap before a removal).
    mutating func move(_ id: MemberID, from old: Int, to new: Int) {
        var slot = home(of: id)
        while slots[slot] != Int32(old) {
            precondition(slots[slot] >= 0, "position \(old) of \(id) is not indexed")
            slot = (slot + 1) & mask
        }
        slots[slot] = Int32(new)
    }

    private mutating func grow(records: [MemberRecord]) {
        let old = slots
        slots = Array(repeating: -1, count: old.count * 2)
        for position in old where position >= 0 {
            var slot = home(of: records[Int(position)].member.id)
            while slots[slot] >= 0 { slot = (slot + 1) & mask }
            slots[slot] = position
        }
    }
}
