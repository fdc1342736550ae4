import Foundation

/// A process-wide bound on test-bed machines booted at once, shared by every suite that boots
/// them (Testbed.with, GossipTestbed, SystemdBus's BootedMachine).
///
/// Why: `swift test` starts every suite at once, and each end-to-end test booted its own bed
/// (systemd, a docker engine and a debug flotillad per machine): some thirty machines at the
/// start of a full run on two cores. Every timer in the process then starved: log gaps of two
/// minutes, loopback HTTP tests that take 0.1 s alone took 250 s and timed out, pure seed loops
/// ran 20 times slower, and commands inside machines ran past their limits. A test waits here
/// before its boot, so its own time limits start only once it has its machines.
public enum MachineSlots {
    /// Enough for the largest bed (5 machines) beside a 3-machine one.
    public static let machinesMax = 8

    private static let condition = NSCondition()
    nonisolated(unsafe) private static var machinesInUse = 0

    /// Blocks the calling thread (never call it on the cooperative pool) until `machines` slots
    /// are free, and takes them. A bed larger than the bound takes all of them.
    public static func acquire(_ machines: Int) -> Int {
        let wanted = max(1, min(machines, machinesMax))
        condition.lock()
        while machinesInUse + wanted > machinesMax { condition.wait() }
        machinesInUse += wanted
        condition.unlock()
        return wanted
    }

    /// Returns what `acquire` took.
    public static func release(_ taken: Int) {
        condition.lock()
        machinesInUse -= taken
        condition.broadcast()
        condition.unlock()
    }
}
