import TestSupport
import Foundation
import Raft
import Testing
@testable import Storage

/// Seeded damage to a real log on disk: whatever happens to the bytes, `open` either recovers the
/// state after some whole prefix of the acknowledged batches, or throws a `StorageError`. It never
/// traps and never returns a state that no prefix of the batches produced.
@Suite(.onBackgroundThreads) struct StorageFuzzTests {
    static let seed: UInt64 = 0xD15C_0001

    @Test func damagedSegmentsRecoverAPrefixOrThrow() throws {
        var random = TestSupport.SplitMix64(seed: Self.seed)
        let directory = TemporaryDirectory()
        var model = ModelLog(state: .bootstrap(voters: voters))
        var prefixes = [model.state]
        do {
            let (log, _) = try WriteAheadLog.open(directory: directory.wal, initialState: model.state)
            for term in UInt64(1)...8 {
                let first = log.lastIndex + 1
                let batch = WriteBatch(entries: entries(first...first + term % 3, term: term, bytes: Int(term) * 7),
                                       hardState: HardState(term: term, commitIndex: first))
                try log.append(batch)
                model.apply(batch)
                prefixes.append(model.state)
            }
        }
        let segment = segmentPaths(in: directory.wal)[0]
        let whole = readBytes(segment)
        var outcomes = (recovered: 0, refused: 0)
        for iteration in 0..<400 {
            var bytes = whole
            switch iteration % 3 {
            case 0:
                for _ in 0..<(1 + Int(random.next() % 3)) {
                    let bit = Int(random.next() % UInt64(bytes.count * 8))
                    bytes[bit / 8] ^= UInt8(1) << UInt8(bit % 8)
                }
            case 1:
                bytes.removeLast(Int(random.next() % UInt64(bytes.count)))
            default:
                let at = Int(random.next() % UInt64(bytes.count))
                let garbage = (0..<Int(random.next() % 64)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
                bytes.replaceSubrange(at..<min(bytes.count, at + garbage.count), with: garbage)
            }
            let copy = try directory.copyOfLog("fuzz-\(iteration)")
            writeBytes(segmentPaths(in: copy)[0], bytes)
            do {
                let (_, state) = try WriteAheadLog.open(directory: copy)
                #expect(prefixes.contains(state),
                        "seed \(Self.seed) iteration \(iteration): recovered a state no prefix produced (\(state.entries.count) entries, \(state.hardState))")
                outcomes.recovered += 1
            } catch {
                let _: StorageError = error
                outcomes.refused += 1
            }
            try FileManager.default.removeItem(atPath: copy)
        }
        // Both outcomes must actually occur, or the test is not exercising what it claims.
        #expect(outcomes.recovered > 0 && outcomes.refused > 0, "\(outcomes)")
    }
}
