import Foundation
import FuzzHarnesses

#if FLOTILLA_LIBFUZZER
// Built by Contrib/fuzz/run with -sanitize=fuzzer,address: libFuzzer drives the harness that
// FLOTILLA_FUZZ_TARGET names. SwiftPM links an executable with `main` aliased to
// `<module>_main`, so that symbol is defined here and hands over to libFuzzer's driver.

typealias FuzzCallback = @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt

@_silgen_name("LLVMFuzzerRunDriver")
func runLibFuzzer(_ argc: UnsafeMutablePointer<CInt>,
                  _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                  _ callback: FuzzCallback) -> CInt

/// Set once, before libFuzzer's first call.
nonisolated(unsafe) var selectedHarness = FuzzHarness.unitFile

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    selectedHarness.run(data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? [])
    return 0
}

@_cdecl("flotilla_fuzz_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    let name = ProcessInfo.processInfo.environment["FLOTILLA_FUZZ_TARGET"] ?? ""
    guard let harness = FuzzHarness(rawValue: name) else {
        FileHandle.standardError.write(Data("FLOTILLA_FUZZ_TARGET must be one of: \(FuzzHarness.allCases.map(\.rawValue).joined(separator: ", "))\n".utf8))
        return 2
    }
    selectedHarness = harness
    var count = argc
    var arguments = argv
    return runLibFuzzer(&count, &arguments, fuzzTestOneInput)
}

#else

/// Without libFuzzer: `flotilla-fuzz HARNESS FILE|DIR...` runs the harness once on each file (a
/// crash found by the fuzzer, replayed under a debugger); `flotilla-fuzz seed DIR` writes every
/// harness's seed inputs into DIR/<harness>/.
@main
struct FuzzReplay {
    static func main() throws {
        let arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.first == "seed", arguments.count == 2 {
            for harness in FuzzHarness.allCases {
                let directory = arguments[1] + "/" + harness.rawValue
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                for (number, seed) in harness.seeds.enumerated() {
                    try Data(seed).write(to: URL(fileURLWithPath: "\(directory)/seed-\(number)"))
                }
            }
            return
        }
        guard arguments.count >= 2, let harness = FuzzHarness(rawValue: arguments[0]) else {
            print("usage: flotilla-fuzz HARNESS FILE|DIR...   or   flotilla-fuzz seed DIR")
            print("harnesses: \(FuzzHarness.allCases.map(\.rawValue).joined(separator: ", "))")
            exit(2)
        }
        var count = 0
        for path in arguments.dropFirst() {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                print("no such file: \(path)")
                exit(2)
            }
            let files = isDirectory.boolValue
                ? try FileManager.default.contentsOfDirectory(atPath: path).sorted().map { path + "/" + $0 }
                : [path]
            for file in files {
                harness.run(Array(try Data(contentsOf: URL(fileURLWithPath: file))))
                count += 1
            }
        }
        print("\(harness.rawValue): \(count) inputs, no crash")
    }
}

#endif
