import FleetAPI
import TestSupport
import Testing

@Suite(.onBackgroundThreads) struct WriteIDTests {
    @Test func theHeaderIsSixteenHexDigitsNotAllZero() {
        #expect(WriteID(headerValue: "00000000000000ff")?.rawValue == 255)
        #expect(WriteID(headerValue: "FFFFFFFFFFFFFFFF")?.rawValue == .max)
        for bad in ["", "0000000000000000", "ff", "0123456789abcdef0", "+123456789abcdef", "0x23456789abcdef", "0123456789abcdeg", " 123456789abcdef"] {
            #expect(WriteID(headerValue: bad) == nil, "\(bad.debugDescription)")
        }
        #expect(WriteID(rawValue: 0) == nil)
    }

    @Test func aKeyRoundTripsThroughItsHeaderAndRandomKeysDiffer() {
        for value: UInt64 in [1, 0xabc, 0x0123_4567_89ab_cdef, .max] {
            let id = WriteID(rawValue: value)!
            #expect(id.headerValue.utf8.count == 16)
            #expect(WriteID(headerValue: id.headerValue) == id)
        }
        let keys = Set((0..<1_000).map { _ in WriteID.random() })
        #expect(keys.count == 1_000)
    }

    @Test func withSetsTheKeyForTheBodyOnlyAndKeepsItsTypedError() async {
        struct Failure: Error, Equatable {}
        let id = WriteID(rawValue: 42)!
        let seen = await WriteID.with(id) { WriteID.current }
        #expect(seen == id)
        #expect(WriteID.current == nil)
        await #expect(throws: Failure.self) {
            try await WriteID.with(id) { () async throws(Failure) in throw Failure() }
        }
    }
}
