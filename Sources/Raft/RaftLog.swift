/// The in-memory log of one server: a snapshot (everything through `snapshotIndex`) followed by
/// entries. The core keeps every entry after the snapshot in memory; the application bounds that
/// by taking snapshots (`RaftNode.createSnapshot`). Persistence is the shell's job, driven by `Ready`.
struct RaftLog: Sendable {
    private(set) var snapshot: Snapshot
    /// entries[i].index == snapshotIndex + 1 + i.
    private(set) var entries: [Entry]
    private(set) var commitIndex: UInt64
    /// Everything at or after this index changed since the entries were last handed out in a
    /// `Ready`; lastIndex + 1 when nothing did.
    private(set) var unstableFromIndex: UInt64
    /// The membership in force after each membership-change entry still in the log, preceded by
    /// the snapshot's. A change takes effect as soon as it is appended (thesis §4.1), so the
    /// current membership is the last element; truncation rolls it back.
    private(set) var membershipHistory: [(index: UInt64, membership: Membership)]

    init(restoring state: PersistentState) throws(PersistentStateError) {
        let metadata = state.snapshot.metadata
        for (field, value) in [("snapshot index", metadata.index), ("snapshot term", metadata.term), ("term", state.hardState.term),
                               ("commit index", state.hardState.commitIndex),
                               ("last entry index", state.entries.last?.index ?? 0), ("last entry term", state.entries.last?.term ?? 0)]
        where value >= RaftLimits.valueCeiling {
            throw .valueBeyondCeiling(field: field, value: value)
        }
        guard UInt64(state.entries.count) < RaftLimits.valueCeiling - metadata.index else {
            throw .valueBeyondCeiling(field: "entry count", value: UInt64(state.entries.count))
        }
        var expected = metadata.index + 1
        var previousTerm = metadata.term
        for entry in state.entries {
            guard entry.index == expected else {
                throw .entriesNotContiguous(expectedIndex: expected, foundIndex: entry.index)
            }
            guard entry.term >= previousTerm else {
                throw .entryTermBelowSnapshot(index: entry.index, term: entry.term, snapshotTerm: previousTerm)
            }
            expected += 1
            previousTerm = entry.term
        }
        self.snapshot = state.snapshot
        self.entries = state.entries
        self.commitIndex = metadata.index
        self.unstableFromIndex = expected
        self.membershipHistory = [(metadata.index, metadata.membership)]
        recordMembershipChanges(in: state.entries[...])
        guard state.hardState.commitIndex <= lastIndex else {
            throw .commitIndexBeyondLog(commitIndex: state.hardState.commitIndex, lastIndex: lastIndex)
        }
        guard state.hardState.term >= lastTerm else {
            throw .termBelowLog(term: state.hardState.term, lastLogTerm: lastTerm)
        }
        self.commitIndex = max(state.hardState.commitIndex, metadata.index)
    }

    var snapshotIndex: UInt64 { snapshot.metadata.index }
    var lastIndex: UInt64 { snapshotIndex + UInt64(entries.count) }
    var lastTerm: UInt64 { entries.last?.term ?? snapshot.metadata.term }
    var membership: Membership { membershipHistory[membershipHistory.count - 1].membership }
    /// The membership before the newest change, while that change is still in the log.
    var membershipBeforeLatestChange: Membership? {
        membershipHistory.count >= 2 ? membershipHistory[membershipHistory.count - 2].membership : nil
    }
    /// Index of the newest membership change in the log (the snapshot's index if none).
    var membershipIndex: UInt64 { membershipHistory[membershipHistory.count - 1].index }

    /// The term of the entry at `index`, or nil when it is compacted away or beyond the log.
    func term(at index: UInt64) -> UInt64? {
        if index == snapshotIndex { return snapshot.metadata.term }
        guard index > snapshotIndex, index <= lastIndex else { return nil }
        return entries[Int(index - snapshotIndex - 1)].term
    }

    func entry(at index: UInt64) -> Entry? {
        guard index > snapshotIndex, index <= lastIndex else { return nil }
        return entries[Int(index - snapshotIndex - 1)]
    }

    func matches(index: UInt64, term: UInt64) -> Bool { self.term(at: index) == term }

    /// Entries from `firstIndex` on, stopping before `bytesMax` would be exceeded but always
    /// including at least one entry when any exists.
    func entries(from firstIndex: UInt64, bytesMax: Int, through lastIncluded: UInt64? = nil) -> [Entry] {
        precondition(firstIndex > snapshotIndex, "entries(from: \(firstIndex)) but log compacted through \(snapshotIndex)")
        let upper = min(lastIncluded ?? lastIndex, lastIndex)
        guard firstIndex <= upper else { return [] }
        var result: [Entry] = []
        var bytes = 0
        for index in firstIndex...upper {
            let entry = entries[Int(index - snapshotIndex - 1)]
            if !result.isEmpty && bytes + entry.sizeBytes > bytesMax { break }
            bytes += entry.sizeBytes
            result.append(entry)
        }
        return result
    }

    /// §5.4.1: "If the logs have last entries with different terms, then the log with the later
    /// term is more up-to-date. If the logs end with the same term, then whichever log is longer
    /// is more up-to-date."
    func isUpToDate(lastIndex otherIndex: UInt64, lastTerm otherTerm: UInt64) -> Bool {
        otherTerm > lastTerm || (otherTerm == lastTerm && otherIndex >= lastIndex)
    }

    /// The last index at or before `index` whose term is at most `term` (the snapshot index if the
    /// search reaches it). Used on both sides of the fast-backtracking hint.
    func lastIndex(atOrBefore index: UInt64, withTermAtMost term: UInt64) -> UInt64 {
        var candidate = min(index, lastIndex)
        while candidate > snapshotIndex, let candidateTerm = self.term(at: candidate), candidateTerm > term {
            candidate -= 1
        }
        return max(candidate, snapshotIndex)
    }

    /// Appends entries that follow the log directly (a leader's own proposals).
    mutating func append(_ newEntries: [Entry]) {
        guard let first = newEntries.first else { return }
        precondition(first.index == lastIndex + 1, "append at \(first.index) after last index \(lastIndex)")
        precondition(first.term >= lastTerm, "append of term \(first.term) after term \(lastTerm)")
        entries.append(contentsOf: newEntries)
        unstableFromIndex = min(unstableFromIndex, first.index)
        recordMembershipChanges(in: newEntries[...])
    }

    /// Why the membership entries of `newEntries` (an AppendEntries' entries, contiguous after a
    /// matching previous entry at or past the commit index) could not be appended where they
    /// would land, or nil. A correct leader validated each change against this same history (log
    /// matching), so a refusal means a forged or broken peer, which must not make the follower
    /// trap in `recordMembershipChanges` (found by the raft-core fuzzer: an initial membership
    /// at index 2).
    func membershipProblem(in newEntries: [Entry]) -> String? {
        guard let conflict = newEntries.first(where: { !matches(index: $0.index, term: $0.term) }) else { return nil }
        var current = membership(at: conflict.index - 1)
        for entry in newEntries where entry.index >= conflict.index {
            switch entry.payload {
            case .initialMembership(let founders):
                guard current == .empty else { return "initial membership at \(entry.index) over \(current)" }
                current = founders
            case .membershipChange(let change):
                if let rejection = current.rejection(of: change) {
                    return "entry \(entry.index) applies \(change) to \(current): \(rejection)"
                }
                current = current.applying(change)
            default:
                break
            }
        }
        return nil
    }

    /// Follower side of AppendEntries (figure 2, receiver rules 3 and 4): keep every entry that
    /// already matches, delete the first conflicting entry and all that follow it, append the rest.
    /// Returns the index of the last entry of `newEntries`.
    mutating func appendReplacingConflicts(_ newEntries: [Entry]) -> UInt64 {
        guard let firstNew = newEntries.first else { return lastIndex }
        let lastNew = newEntries[newEntries.count - 1].index
        guard let conflict = newEntries.first(where: { !matches(index: $0.index, term: $0.term) }) else {
            // Every entry is already present (a duplicate or reordered request): nothing may be
            // truncated, or entries acknowledged since would be lost.
            return lastNew
        }
        precondition(conflict.index > commitIndex,
                     "conflict at \(conflict.index) would remove a committed entry (commit \(commitIndex))")
        precondition(conflict.index > snapshotIndex && conflict.index <= lastIndex + 1,
                     "conflict at \(conflict.index) outside log (\(snapshotIndex), \(lastIndex)]")
        truncate(from: conflict.index)
        append(Array(newEntries[Int(conflict.index - firstNew.index)...]))
        return lastNew
    }

    private mutating func truncate(from index: UInt64) {
        guard index <= lastIndex else { return }
        entries.removeLast(Int(lastIndex - index + 1))
        unstableFromIndex = min(unstableFromIndex, index)
        while membershipHistory.count > 1 && membershipHistory[membershipHistory.count - 1].index >= index {
            membershipHistory.removeLast()
        }
    }

    private mutating func recordMembershipChanges(in newEntries: ArraySlice<Entry>) {
        for entry in newEntries {
            if case .initialMembership(let founders) = entry.payload {
                precondition(membership == .empty, "initial membership at \(entry.index) over \(membership)")
                membershipHistory.append((entry.index, founders))
            }
            if case .membershipChange(let change) = entry.payload {
                // Entries come from a leader that validated the change against this same history
                // (log matching), so an invalid change here would be a bug, not bad input.
                let current = membership
                precondition(current.rejection(of: change) == nil,
                             "log entry \(entry.index) applies invalid \(change) to \(current)")
                membershipHistory.append((entry.index, current.applying(change)))
            }
        }
    }

    mutating func commit(to index: UInt64) {
        guard index > commitIndex else { return }
        precondition(index <= lastIndex, "commit to \(index) beyond last index \(lastIndex)")
        commitIndex = index
    }

    /// Hands out the unstable entries (the shell persists them before the next `Ready`).
    mutating func takeUnstableEntries() -> [Entry] {
        defer { unstableFromIndex = lastIndex + 1 }
        guard unstableFromIndex <= lastIndex else { return [] }
        return Array(entries[Int(unstableFromIndex - snapshotIndex - 1)...])
    }

    /// The membership in force at `index` (which must not be before the snapshot).
    func membership(at index: UInt64) -> Membership {
        precondition(index >= snapshotIndex, "membership at \(index) before snapshot \(snapshotIndex)")
        return membershipHistory.last(where: { $0.index <= index })!.membership
    }

    /// Application-driven compaction: the snapshot covers a committed, applied prefix.
    mutating func compact(to newSnapshot: Snapshot) {
        let index = newSnapshot.metadata.index
        precondition(index > snapshotIndex && index <= commitIndex,
                     "compaction to \(index) outside (\(snapshotIndex), \(commitIndex)]")
        entries.removeFirst(Int(index - snapshotIndex))
        snapshot = newSnapshot
        let later = membershipHistory.filter { $0.index > index }
        membershipHistory = [(index, newSnapshot.metadata.membership)] + later
    }

    /// Installs a snapshot received from a leader (§7, figure 13 receiver rules 6 and 7): if the
    /// log has the snapshot's last entry, the entries after it are kept; otherwise the whole log
    /// goes. Either way everything after the snapshot is re-handed out so the shell can simply
    /// replace its stored log with the snapshot and append.
    mutating func install(_ newSnapshot: Snapshot) {
        let metadata = newSnapshot.metadata
        precondition(metadata.index > commitIndex, "installing snapshot \(metadata.index) at or below commit \(commitIndex)")
        var kept: [Entry] = []
        if matches(index: metadata.index, term: metadata.term) {
            kept = Array(entries[Int(metadata.index - snapshotIndex)...])
        }
        snapshot = newSnapshot
        entries = kept
        commitIndex = metadata.index
        unstableFromIndex = metadata.index + 1
        membershipHistory = [(metadata.index, metadata.membership)]
        recordMembershipChanges(in: kept[...])
    }
}
