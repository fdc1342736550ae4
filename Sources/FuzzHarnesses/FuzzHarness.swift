import Foundation

/// The fuzzing harnesses (issue 14 item 8): each takes arbitrary bytes to one decoder or core of
/// Flotilla, which must refuse what is malformed with a typed error and never trap, leak or hang;
/// where the decoder accepts, a harness also checks what must then hold (a round trip, a
/// canonical encoding), so that a silent misreading is a crash too.
///
/// `flotilla-fuzz` runs them under libFuzzer (`Contrib/fuzz/run`); `FuzzHarnessTests` replays
/// the committed corpora (`Contrib/fuzz/corpus/<harness>/`) in every test run, so a crash the
/// fuzzer found stays fixed.
public enum FuzzHarness: String, CaseIterable, Sendable {
    /// The gossip codec: decode; what decodes re-encodes to a message that decodes equal.
    case membershipCodec = "membership-codec"
    /// Decoded gossip into a membership core that knows three members, then its timers.
    case membershipCore = "membership-core"
    /// Raft transport framing (split at arbitrary points) and every framed value's decoder.
    case wireFrames = "wire-frames"
    /// Raft messages, decoded, stepped into a three-voter core as follower, candidate or leader.
    case raftCore = "raft-core"
    /// Registry commands: decode, round trip, apply to a populated registry.
    case registryCommand = "registry-command"
    /// Registry snapshots: restore; what restores encodes back to the same bytes.
    case registrySnapshot = "registry-snapshot"
    /// The unit-file parser: what parses serializes and parses back to the same file.
    case unitFile = "unit-file"
    /// fleet API bodies: each JSON entity the API reads, and unit files from fleet's options.
    case fleetJSON = "fleet-json"
    /// A raw HTTP/1.1 request through NIO's parser and the API's router, validation and handler.
    case httpRequest = "http-request"
    /// Write-ahead-log recovery from a segment whose bytes the input overwrites or extends.
    case walRecovery = "wal-recovery"

    /// Inputs past this many bytes are cut: every decoder has its own bound well below, and
    /// libFuzzer's default `-max_len` is 4 KiB anyway.
    public static let inputBytesMax = 1 << 20

    public func run(_ bytes: [UInt8]) {
        let input = bytes.count > Self.inputBytesMax ? Array(bytes.prefix(Self.inputBytesMax)) : bytes
        switch self {
        case .membershipCodec: MembershipHarnesses.codec(input)
        case .membershipCore: MembershipHarnesses.core(input)
        case .wireFrames: RaftHarnesses.frames(input)
        case .raftCore: RaftHarnesses.core(input)
        case .registryCommand: RegistryHarnesses.command(input)
        case .registrySnapshot: RegistryHarnesses.snapshot(input)
        case .unitFile: UnitFileHarnesses.parser(input)
        case .fleetJSON: UnitFileHarnesses.fleetJSON(input)
        case .httpRequest: HTTPHarness.request(input)
        case .walRecovery: StorageHarness.recovery(input)
        }
    }
}

/// A property that must hold for what a decoder accepted: a failure is a bug the fuzzer reports
/// as a crash, with the input that caused it.
func require(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String,
             file: StaticString = #fileID, line: UInt = #line) {
    if !condition() { fatalError("fuzz property failed: \(message())", file: file, line: line) }
}
