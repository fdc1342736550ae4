import Foundation
import Testing
import TestSupport

@testable import UnitFile

@Suite(.onBackgroundThreads) struct SHA1Tests {
    private func hex(_ bytes: [UInt8]) -> String {
        bytes.map { String(format: "%02x", $0) }.joined()
    }

    /// FIPS 180-2 Appendix A (and RFC 3174 section 7.3) test vectors.
    @Test(arguments: [
        ("", "da39a3ee5e6b4b0d3255bfef95601890afd80709"),
        ("abc", "a9993e364706816aba3e25717850c26c9cd0d89d"),
        ("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", "84983e441c3bd26ebaae4aa1f95129e5e54670f1"),
    ])
    func digestMatchesFIPSVector(message: String, expected: String) {
        #expect(hex(SHA1.digest(of: Array(message.utf8))) == expected)
    }

    @Test func digestOfOneMillionAMatchesFIPSVector() {
        let message = [UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000)
        #expect(hex(SHA1.digest(of: message)) == "34aa973cd4c4daa4f61eeb2bdbad27316534016f")
    }

    @Test func feedingInPiecesGivesTheSameDigest() {
        var generator = SplitMix64(seed: 180)
        for length in [0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 129, 1000] {
            let message = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            var hasher = SHA1()
            var index = 0
            while index < message.count {
                let step = Int.random(in: 1...70, using: &generator)
                let end = min(message.count, index + step)
                hasher.update(message[index..<end])
                index = end
            }
            #expect(hasher.finalize() == SHA1.digest(of: message), "length \(length)")
        }
    }

    /// Cross-checks padding at every block boundary against the system's sha1sum.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/sha1sum")))
    func digestMatchesSha1sumAroundBlockBoundaries() async throws {
        var generator = SplitMix64(seed: 3174)
        for length in [1, 54, 55, 56, 63, 64, 65, 111, 112, 119, 128, 4097] {
            let message = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let expected = try await sha1sum(message)
            #expect(hex(SHA1.digest(of: message)) == expected, "length \(length)")
        }
    }
}

/// Runs /usr/bin/sha1sum on the given bytes (from a file: ChildProcess gives the child
/// /dev/null as its input) and returns its hex digest.
func sha1sum(_ bytes: [UInt8]) async throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("sha1-\(UUID().uuidString)").path
    try Data(bytes).write(to: URL(fileURLWithPath: path))
    defer { try? FileManager.default.removeItem(atPath: path) }
    let result = try await ChildProcess.runOnOwnThread(["/usr/bin/sha1sum", path], timeoutSeconds: 60)
    return result.standardOutput.split(separator: " ").first.map(String.init) ?? ""
}
