/// Whether this process may go on as its machine ID, when another live process may have the
/// same one (a cloned disk image that kept /etc/machine-id). Pure; time in ms on the machine's
/// monotonic clock.
///
/// Two signals: gossip found a live member at another address answering for our ID (`clash`),
/// and voters answered a renewal with `heldElsewhere` (the other process holds the lease). The
/// lease decides who stays: a process that has held its lease in this life keeps running (it
/// only reports the clash once); one that never held it refuses to go on once a signal has
/// lasted `decisionMilliseconds`, E plus two renewal rounds. Waiting that long matters twice:
/// when both start at the same moment, one of them gathers its majority within the first
/// rounds and must not be refused by a voter the other reached first; and a machine whose
/// address changed sees `heldElsewhere` for up to E after its previous process's last renewal,
/// which is not a clash (no gossip clash comes with it: nothing answers at the old address).
public struct IdentityGuard: Hashable, Sendable {
    public enum Decision: Hashable, Sendable {
        /// Stop: `other` (an address) holds this machine ID. The shell exits without running units.
        case refuse(other: String)
        /// This process holds the lease; the other one will be refused. Log once.
        case reportClash(other: String)
    }

    public let decisionMilliseconds: Int64
    public private(set) var hasHeldLease = false
    struct Signal: Hashable, Sendable {
        var address: String
        var sinceMilliseconds: Int64
    }

    private var clash: Signal?
    private var holder: Signal?
    private var reported = false
    private var refused = false

    public init(timing: LeaseTiming) {
        decisionMilliseconds = timing.expiryMilliseconds + 2 * timing.renewalIntervalMilliseconds
    }

    /// Gossip found `address` alive with our machine ID.
    public mutating func clash(with address: String, nowMilliseconds: Int64) -> Decision? {
        if clash == nil { clash = Signal(address: address, sinceMilliseconds: nowMilliseconds) }
        return tick(nowMilliseconds: nowMilliseconds)
    }

    /// A voter said `address` holds the lease.
    public mutating func heldElsewhere(by address: String, nowMilliseconds: Int64) -> Decision? {
        holder = Signal(address: address, sinceMilliseconds: holder?.sinceMilliseconds ?? nowMilliseconds)
        return tick(nowMilliseconds: nowMilliseconds)
    }

    /// A majority granted this process's lease.
    public mutating func leaseHeld(nowMilliseconds: Int64) -> Decision? {
        hasHeldLease = true
        holder = nil
        return tick(nowMilliseconds: nowMilliseconds)
    }

    /// `refuse` is said at most once and ends the life; `reportClash` is said once.
    public mutating func tick(nowMilliseconds: Int64) -> Decision? {
        guard !refused else { return nil }
        if hasHeldLease {
            guard let clash, !reported else { return nil }
            reported = true
            return .reportClash(other: clash.address)
        }
        let since = [clash?.sinceMilliseconds, holder?.sinceMilliseconds].compactMap { $0 }.min()
        guard let since, nowMilliseconds - since >= decisionMilliseconds,
              let other = holder?.address ?? clash?.address else { return nil }
        refused = true
        return .refuse(other: other)
    }
}
