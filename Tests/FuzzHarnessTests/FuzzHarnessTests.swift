import Foundation
@testable import FuzzHarnesses
import Membership
import Registry
import Testing
import TestSupport
import UnitFile
import Wire

/// Every input in the committed corpora (Contrib/fuzz/corpus/<harness>/: the seeds and what
/// fuzzing kept, crashes it found included once fixed) runs through its harness on every test
/// run, without libFuzzer or sanitizers: a regression crashes this test.
@Suite(.onBackgroundThreads) struct FuzzHarnessTests {
    static let corpus = Testbed.repositoryRoot.appendingPathComponent("Contrib/fuzz/corpus")

    // One harness at a time: the suite starts with every other one, and ten CPU-bound cases on
    // threads of their own would add to the start-up starvation of the timed network tests.
    @Test(.serialized, arguments: FuzzHarness.allCases)
    func theCommittedCorpusRunsClean(harness: FuzzHarness) async throws {
        // The HTTP harness blocks its thread on the handler: a background thread (the suite's
        // trait), not one of the cooperative pool's, where the handler's task must run.
        try Self.replay(harness)
    }

    static func replay(_ harness: FuzzHarness) throws {
        let directory = Self.corpus.appendingPathComponent(harness.rawValue)
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
        #expect(files.count >= harness.seeds.count, "\(harness.rawValue) has fewer corpus files than seeds")
        for file in files {
            harness.run(Array(try Data(contentsOf: directory.appendingPathComponent(file))))
        }
    }

    /// The seeds start the fuzzer past the first checks: each decodes where its harness decodes.
    @Test func theSeedsAreAcceptedByTheDecodersTheyFeed() async throws {
        try Self.checkSeeds()
    }

    static func checkSeeds() throws {
        for seed in FuzzHarness.membershipCodec.seeds { _ = try MembershipCodec.decode(seed) }
        for seed in FuzzHarness.registryCommand.seeds { _ = try RegistryCommand.decode(seed) }
        for seed in FuzzHarness.registrySnapshot.seeds {
            var state = RegistryState()
            try state.restore(from: seed)
        }
        for seed in FuzzHarness.unitFile.seeds { _ = try UnitFile(parsing: seed) }
        var decoder = FrameDecoder()
        let framed = FuzzHarness.wireFrames.seeds.filter { $0.first == 0x46 }
        #expect(!framed.isEmpty)
        for seed in framed { try decoder.feed(seed) }
        var frames = 0
        while try decoder.nextFrame() != nil { frames += 1 }
        #expect(frames == framed.count)
        let answered = FuzzHarness.httpRequest.seeds.map { HTTPHarness.answers($0).map(\.status) }
        #expect(answered.allSatisfy { $0.count == 2 }, "each seed is one whole request: \(answered)")
        #expect(answered.map(\.first) == [200, 201, 204, 204, 200, 200], "\(answered)")
    }

    @Test func seedsAreWrittenPerHarness() {
        for harness in FuzzHarness.allCases { #expect(!harness.seeds.isEmpty, "\(harness.rawValue) has no seed") }
    }
}
