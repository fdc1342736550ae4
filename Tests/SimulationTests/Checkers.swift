import Raft

// The safety properties of figure 3 of the paper, checked after every moment of a simulation,
// and the liveness check of its final phase.

extension Simulation {
    /// Log matching (§5.3) and leader append-only (figure 3), checked on what a node hands out
    /// for persistence. "If two entries in different logs have the same index and term, then they
    /// store the same command" and "then the logs are identical in all preceding entries": we
    /// check the first directly and the second by induction, recording for each (index, term)
    /// the term of the entry before it.
    mutating func checkReady(_ index: Int, _ ready: Ready) throws(SimulationFailure) {
        let node = nodes[index]
        let raft = node.raft!
        guard let first = ready.entries.first else { return }
        guard var previousTerm = raft.term(at: first.index - 1) else {
            throw fail("\(node.id) hands out entries from \(first.index) but has no term for \(first.index - 1)")
        }
        for entry in ready.entries {
            let key = IndexAndTerm(index: entry.index, term: entry.term)
            if let known = loggedEntries[key] {
                guard known.payload == entry.payload else {
                    throw fail("log matching: entry (\(entry.index), t\(entry.term)) on \(node.id) holds \(entry.payload), elsewhere \(known.payload)")
                }
                guard known.previousTerm == previousTerm else {
                    throw fail("log matching: entry (\(entry.index), t\(entry.term)) on \(node.id) follows term \(previousTerm), elsewhere \(known.previousTerm)")
                }
            } else {
                loggedEntries[key] = (entry.payload, previousTerm)
            }
            previousTerm = entry.term
        }
        // "A leader never overwrites or deletes entries in its log; it only appends new entries."
        if raft.role == .leader {
            if let mark = node.leaderAppendMark, mark.term == raft.term, first.index <= mark.lastIndex {
                throw fail("leader append-only: \(node.id), leader in t\(raft.term), rewrites from \(first.index) after handing out through \(mark.lastIndex)")
            }
            nodes[index].leaderAppendMark = (raft.term, ready.entries.last!.index)
        }
    }

    /// State machine safety (figure 3): "if a server has applied a log entry at a given index to
    /// its state machine, no other server will ever apply a different log entry for the same index."
    mutating func checkCommitted(_ entry: Entry, on id: NodeID) throws(SimulationFailure) {
        if let known = committedEntries[entry.index] {
            guard known == entry else {
                throw fail("state machine safety: \(id) applies \(entry.index)@t\(entry.term) \(entry.payload), another server applied \(known.index)@t\(known.term) \(known.payload)")
            }
        } else {
            committedEntries[entry.index] = entry
            highestCommittedIndex = max(highestCommittedIndex, entry.index)
        }
    }

    func checkSnapshot(_ snapshot: Snapshot, on id: NodeID) throws(SimulationFailure) {
        let metadata = snapshot.metadata
        if let known = committedEntries[metadata.index], known.term != metadata.term {
            throw fail("\(id) installs snapshot \(metadata.index)@t\(metadata.term) but committed entry there has t\(known.term)")
        }
    }

    /// Election safety ("at most one leader can be elected in a given term") and leader
    /// completeness ("if a log entry is committed in a given term, then that entry will be present
    /// in the logs of the leaders for all higher-numbered terms"), checked when a leader appears.
    mutating func checkLeaders() throws(SimulationFailure) {
        for index in nodes.indices {
            guard let raft = nodes[index].raft else { continue }
            let seen = (raft.role, raft.term)
            if nodes[index].lastSeenRole.map({ $0 != seen }) ?? true {
                nodes[index].lastSeenRole = seen
                transcript.record(now, .role(nodes[index].id, raft.role, raft.term))
            }
            guard raft.role == .leader else { continue }
            if let known = leaderByTerm[raft.term] {
                guard known == nodes[index].id else {
                    throw fail("election safety: \(known) and \(nodes[index].id) both leaders in term \(raft.term)")
                }
                continue
            }
            leaderByTerm[raft.term] = nodes[index].id
            statistics.leadersElected += 1
            try checkLeaderCompleteness(raft)
        }
    }

    func checkLeaderCompleteness(_ raft: RaftNode) throws(SimulationFailure) {
        guard highestCommittedIndex > 0 else { return }
        let snapshotIndex = raft.snapshotMetadata.index
        for index in 1...highestCommittedIndex {
            guard let committed = committedEntries[index] else { continue }
            if index < snapshotIndex { continue }
            guard raft.term(at: index) == committed.term else {
                throw fail("leader completeness: new leader \(raft.id) of t\(raft.term) has \(raft.term(at: index).map { "t\($0)" } ?? "nothing") at \(index), committed entry is t\(committed.term)")
            }
        }
    }

    /// Liveness: one live leader whose log is fully committed, every member alive and caught up,
    /// every client answered. Then the end-state checks: every acknowledged command applied
    /// exactly once, identically on every member.
    func converged() throws(SimulationFailure) -> Bool {
        guard let leader = currentLeaderIndex(), let leaderRaft = nodes[leader].raft,
              leaderRaft.commitIndex == leaderRaft.lastIndex, leaderRaft.term(at: leaderRaft.commitIndex) == leaderRaft.term,
              clients.allSatisfy({ !$0.inProgress })
        else { return false }
        for member in leaderRaft.membership.members {
            let node = nodes[Int(member.rawValue) - 1]
            guard let raft = node.raft, node.pendingIO == nil, raft.lastIndex == leaderRaft.lastIndex,
                  raft.term == leaderRaft.term, node.stateMachine!.appliedIndex == leaderRaft.commitIndex
            else { return false }
        }
        let reference = nodes[leader].stateMachine!.applied
        for member in leaderRaft.membership.members {
            let machine = nodes[Int(member.rawValue) - 1].stateMachine!
            for stamp in acknowledged where !machine.appliedSet.contains(stamp) {
                throw fail("acknowledged command \(stamp) missing from \(member)'s state machine")
            }
            guard machine.applied == reference else {
                throw fail("state machines of \(member) and \(nodes[leader].id) differ after convergence")
            }
        }
        return true
    }

    func convergenceReport() -> String {
        let nodeStates = nodes.map { node -> String in
            guard let raft = node.raft else { return "\(node.id): down" }
            return "\(node.id): \(raft.role) t\(raft.term) last=\(raft.lastIndex) commit=\(raft.commitIndex) applied=\(node.stateMachine!.appliedIndex) leader=\(raft.leaderID.map(\.description) ?? "-") \(raft.membership)"
        }
        let busy = clients.filter(\.inProgress).map { "client \($0.clientID) seq \($0.sequence)" }
        return "\n" + (nodeStates + ["clients in progress: \(busy)", "messages in flight: \(network.inFlightCount)"]).joined(separator: "\n")
    }
}
