import TestSupport
import FleetAPI
import Foundation
import HTTPAPI
import MembershipShell
import Testing

@testable import Daemon

/// The leader's rules for one rotation step (install, use, remove), pure.
@Suite(.onBackgroundThreads) struct GossipKeyringRotationTests {
    let old = [UInt8](repeating: 1, count: 32)
    let new = [UInt8](repeating: 2, count: 32)
    var newText: String { Data(new).base64EncodedString() }

    func step(_ operation: FlotillaKeyringChange.Operation, _ key: String, _ ring: [[UInt8]]) throws(APIError) -> [[UInt8]] {
        try GossipKeyringRotation.apply(FlotillaKeyringChange(operation: operation, key: key), to: ring)
    }

    @Test func installUseRemoveRotatesTheKey() throws {
        let installed = try step(.install, newText, [old])
        #expect(installed == [old, new], "installed, the old key still encrypts")
        #expect(try step(.install, newText, installed) == installed, "installing twice changes nothing")
        let used = try step(.use, GossipKeyring.fingerprint(of: new), installed)
        #expect(used == [new, old])
        #expect(try step(.remove, Data(old).base64EncodedString(), used) == [new])
    }

    @Test func eachStepRefusesWhatWouldBreakGossip() {
        func status(_ body: () throws(APIError) -> [[UInt8]]) -> Int? {
            do { _ = try body(); return nil } catch { return error.status }
        }
        #expect(status { () throws(APIError) in try step(.remove, Data(old).base64EncodedString(), [old, new]) } == 409, "the primary cannot be removed")
        #expect(status { () throws(APIError) in try step(.use, newText, [old]) } == 404, "only an installed key can be used")
        #expect(status { () throws(APIError) in try step(.remove, "0011223344556677", [old, new]) } == 404)
        #expect(status { () throws(APIError) in try step(.install, "not base64!", [old]) } == 400)
        #expect(status { () throws(APIError) in try step(.install, Data([1, 2, 3]).base64EncodedString(), [old]) } == 400, "a key is 32 bytes")
        let full = (0..<8).map { [UInt8](repeating: $0 + 10, count: 32) }
        #expect(status { () throws(APIError) in try step(.install, newText, full) } == 409, "at most 8 keys")
    }

    @Test func theListingNamesKeysByFingerprintOnly() {
        let listing = GossipKeyringRotation.listing([new, old], isReplicated: true)
        #expect(listing.keys.map(\.isPrimary) == [true, false])
        #expect(listing.keys.map(\.fingerprint) == [GossipKeyring.fingerprint(of: new), GossipKeyring.fingerprint(of: old)])
        #expect(listing.keys.allSatisfy { $0.fingerprint.count == 16 && !newText.contains($0.fingerprint) })
    }
}
