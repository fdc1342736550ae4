import NIOCore
import Raft
import Locking

/// One proposal on its way to the loop: a client's command, or a membership change.
struct ProposalRequest: Sendable {
    enum Kind: Sendable {
        case command(data: [UInt8], stamp: ClientStamp?)
        case membershipChange(MembershipChange)
        /// A read barrier (ReadIndex, thesis §6.4); answered with the read index, `result` empty.
        case read
    }

    var kind: Kind
    var completion: @Sendable (Result<AppliedProposal, ProposalError>) -> Void
}

/// The bounded hand-off from other threads (the transport's IO loop, clients) to the Raft loop.
///
/// Offers append under a lock; the first offer after the loop drained schedules one turn of the
/// loop. Everything that arrives while the loop is busy (for example inside an fsync) is taken by
/// the next turn together, so one Ready, and one fsync, covers all of it: group commit.
final class Inbox: Sendable {
    struct Contents {
        var messages: [Message] = []
        var proposals: [ProposalRequest] = []
        var isTurnScheduled = false
        var messagesDropped = 0
        /// Proposals taken by the loop and not yet answered (the loop keeps this up to date).
        var proposalsInFlight = 0
        /// Set when the replica stops: nothing is accepted afterwards, so that no offer waits
        /// for a loop that will never turn again.
        var isClosed = false
    }

    enum ProposalOffer {
        case scheduleTurn
        case queued
        case refusedFull
        case refusedClosed
    }

    let messagesMax: Int
    let proposalsMax: Int
    let contents = Locked(Contents())

    init(messagesMax: Int, proposalsMax: Int) {
        self.messagesMax = messagesMax
        self.proposalsMax = proposalsMax
    }

    /// Returns whether the caller must schedule a turn.
    func offer(_ message: Message) -> Bool {
        contents.withLock { contents in
            guard !contents.isClosed else { return false }
            guard contents.messages.count < messagesMax else {
                contents.messagesDropped += 1
                return false
            }
            contents.messages.append(message)
            return scheduleIfIdle(&contents)
        }
    }

    func offer(_ proposal: ProposalRequest) -> ProposalOffer {
        contents.withLock { contents in
            if contents.isClosed { return .refusedClosed }
            guard contents.proposals.count + contents.proposalsInFlight < proposalsMax else { return .refusedFull }
            contents.proposals.append(proposal)
            return scheduleIfIdle(&contents) ? .scheduleTurn : .queued
        }
    }

    /// Refuses every later offer and returns the proposals still queued, for the loop to fail.
    func close() -> [ProposalRequest] {
        contents.withLock { contents in
            contents.isClosed = true
            let queued = contents.proposals
            contents.proposals = []
            contents.messages = []
            return queued
        }
    }

    private func scheduleIfIdle(_ contents: inout Contents) -> Bool {
        if contents.isTurnScheduled { return false }
        contents.isTurnScheduled = true
        return true
    }

    /// Takes everything queued; the next offer schedules a new turn.
    func take() -> (messages: [Message], proposals: [ProposalRequest]) {
        contents.withLock { contents in
            let taken = (contents.messages, contents.proposals)
            contents.messages = []
            contents.proposals = []
            contents.isTurnScheduled = false
            contents.proposalsInFlight += taken.1.count
            return taken
        }
    }

    func proposalsAnswered(_ count: Int) {
        guard count > 0 else { return }
        contents.withLock { $0.proposalsInFlight -= count }
    }

    var messagesDropped: Int { contents.withLock { $0.messagesDropped } }
    /// True once the replica stopped: its event loop may be shut down, so nothing may be
    /// scheduled on it any more (NIO drops such tasks, and a caller waiting on one would hang).
    var isClosed: Bool { contents.withLock { $0.isClosed } }
}
