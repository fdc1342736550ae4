/// What the core asks its shell to do. One enum per input (apple/swift-cluster-membership's
/// shape); the shell switches over each exhaustively and performs the directives in order.
///
/// Timer contract: the shell keeps exactly one timer per instance. Each `.scheduleTick(at:)`
/// replaces it; when it fires the shell calls `onTick(now:)`. Calling `onTick` early or more
/// often is harmless, only wasteful. The core emits `.scheduleTick` only when its earliest
/// deadline moved, so a list without one leaves the current timer in place.

/// A member's state as this instance now sees it, with the status it had before (nil when the
/// member was unknown until now). Data changes at the same status report the same status twice.
public struct MemberChange: Hashable, Sendable, CustomStringConvertible {
    public var member: Member
    public var previousStatus: MemberStatus?

    public init(member: Member, previousStatus: MemberStatus?) {
        self.member = member
        self.previousStatus = previousStatus
    }

    public var description: String {
        "\(member.id): \(previousStatus.map { "\($0)" } ?? "new") -> \(member.status) inc=\(member.incarnation)"
    }
}

public enum TickDirective: Hashable, Sendable {
    /// A datagram, or a stream message when `message.isStream`.
    case send(MembershipMessage, to: MemberAddress)
    case memberChanged(MemberChange)
    /// A dead or left member was kept `deadRetentionMilliseconds` and is now forgotten.
    case memberForgotten(MemberID)
    case scheduleTick(at: MonotonicInstant)
}

public enum MessageDirective: Hashable, Sendable {
    case send(MembershipMessage, to: MemberAddress)
    case memberChanged(MemberChange)
    case scheduleTick(at: MonotonicInstant)
}

public enum JoinDirective: Hashable, Sendable {
    case send(MembershipMessage, to: MemberAddress)
    case scheduleTick(at: MonotonicInstant)
}

public enum LeaveDirective: Hashable, Sendable {
    /// The goodbye, sent at once to a few members; it keeps spreading from the queue on later
    /// ticks, so the shell should keep ticking for a few gossip intervals before closing.
    case send(MembershipMessage, to: MemberAddress)
    case scheduleTick(at: MonotonicInstant)
}

public enum UpdateDirective: Hashable, Sendable {
    case send(MembershipMessage, to: MemberAddress)
    case scheduleTick(at: MonotonicInstant)
}

public enum MembershipError: Error, Hashable, Sendable {
    case metadataTooLarge(bytes: Int, bytesMax: Int)
    case versionTooLong(bytes: Int, bytesMax: Int)
}

/// What every input collects before it is mapped to its own directive enum.
enum Effect {
    case send(MembershipMessage, to: MemberAddress)
    case memberChanged(MemberChange)
    case memberForgotten(MemberID)
}
