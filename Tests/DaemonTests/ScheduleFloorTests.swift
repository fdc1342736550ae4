@testable import Daemon
import TestSupport
import Testing

/// The file beside the unit directory that a restarted flotillad reads first: the schedule
/// version it last acted on and that schedule's lease epoch, with which it renews at once.
@Suite(.onBackgroundThreads) struct ScheduleFloorTests {
    @Test func versionAndEpochRoundTripLittleEndian() throws {
        let bytes = MachineAgent.encodeVersionFloor(version: 0x0102_0304_0506_0708, leaseEpoch: 9)
        #expect(bytes == [8, 7, 6, 5, 4, 3, 2, 1, 9, 0, 0, 0, 0, 0, 0, 0])
        let floor = try #require(MachineAgent.decodeVersionFloor(bytes))
        #expect(floor.version == 0x0102_0304_0506_0708)
        #expect(floor.leaseEpoch == 9)
    }

    /// A file written before the epoch was kept: the version counts, the epoch is unknown, and
    /// the agent waits for a schedule before it renews (as it did then).
    @Test func aVersionOnlyFileHasNoEpoch() throws {
        let floor = try #require(MachineAgent.decodeVersionFloor([42, 0, 0, 0, 0, 0, 0, 0]))
        #expect(floor.version == 42)
        #expect(floor.leaseEpoch == nil)
    }

    @Test(arguments: [0, 1, 7, 9, 15, 17, 24])
    func anyOtherLengthIsRefused(length: Int) {
        #expect(MachineAgent.decodeVersionFloor([UInt8](repeating: 1, count: length)) == nil)
    }
}
