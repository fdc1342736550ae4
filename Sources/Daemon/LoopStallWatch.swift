import Foundation
import NIOCore
import Locking

/// Watches that an event loop still runs what it is given.
///
/// Why: the Raft replica's loop blocks in each write and fsync of its log, by design
/// (`RaftReplica`). A disk that stops answering (a hung NFS or iSCSI target, a drive retrying a
/// bad sector for minutes) holds that loop for good, and no error ever comes back; meanwhile
/// gossip, the API and the systemd watchdog, each on threads of their own, go on saying this
/// machine is fine. The other voters elect around it, but autopilot never replaces it, and the
/// cluster runs a voter short without a word. A loop that has not run an empty task within
/// `limit` is taken for such a disk: the daemon stops (status 74, as for a failed write), its
/// gossip falls silent, and autopilot gives its seat to another machine.
///
/// The time counted is the watch's own: each poll adds at most twice its step, so a machine that
/// was suspended or starved as a whole (the watch did not run either) is not taken for a stall.
///
/// The watch has a thread of its own and acts from it: a hung disk also holds every task of the
/// Swift concurrency pool that touches the data directory (the lease ledger's writes, seen on the
/// test bed), and with a pool of two threads a watch among them would hang with the rest.
final class LoopStallWatch: Sendable {
    /// How long the loop may leave a task unrun before it counts as stalled.
    let limit: Duration
    /// The pause between two checks of a loop that answered.
    let interval: Duration
    /// The pause between two looks at an unanswered task.
    let step: Duration
    /// Once set, the watch gives the loop nothing more (set under the lock that `ask` holds,
    /// so that after `stop` returns no task reaches a loop that may be shutting down).
    private let stopped = Locked(false)

    init(limit: Duration, interval: Duration = .seconds(1), step: Duration = .milliseconds(100)) {
        self.limit = limit
        self.interval = interval
        self.step = step
    }

    /// Watches `eventLoop` on a new thread; calls `onStall` there at the first stall. After
    /// `stop()` it only ends.
    func start(watching eventLoop: any EventLoop, onStall: @escaping @Sendable (LoopStalled) -> Void) {
        let thread = Thread { [self] in
            if let stall = firstStall(of: eventLoop) { onStall(stall) }
        }
        thread.name = "flotilla-loop-watch"
        thread.start()
    }

    func stop() { stopped.withLock { $0 = true } }

    /// The first stall of `eventLoop`, blocking the calling thread; nil once stopped.
    func firstStall(of eventLoop: any EventLoop) -> LoopStalled? {
        while true {
            let answered = Answer()
            let asked = stopped.withLock { isStopped -> Bool in
                if !isStopped { eventLoop.execute { answered.mark() } }
                return !isStopped
            }
            guard asked else { return nil }
            var waited = Duration.zero
            while !answered.isMarked {
                if waited >= limit { return stopped.withLock { $0 } ? nil : LoopStalled(waited: waited) }
                let before = ContinuousClock.now
                Self.sleep(step)
                waited += min(ContinuousClock.now - before, step * 2)
            }
            Self.sleep(interval)
        }
    }

    private static func sleep(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        Thread.sleep(forTimeInterval: Double(seconds) + Double(attoseconds) / 1e18)
    }

    /// Set by the loop when it runs the watch's task.
    private final class Answer: Sendable {
        private let marked = Locked(false)
        func mark() { marked.withLock { $0 = true } }
        var isMarked: Bool { marked.withLock { $0 } }
    }
}

/// The Raft loop did not run a task for `waited`: its disk is taken to have stopped answering.
struct LoopStalled: Error, CustomStringConvertible {
    let waited: Duration
    var description: String {
        "the Raft loop has not run for \(waited.components.seconds) s (a write or fsync of the data directory that does not "
            + "return: a hung disk?); this node no longer votes, acknowledges or leads"
    }
}
