// flotilla-bench-unitfile: the unit-file parser on hostile shapes, to show it is linear.
//
// A file of N continuation lines (`a\`), at N and at 4N: a linear parser takes about four times
// as long at 4N; the quadratic one it replaced took 12 s for 40,000 lines. Also a 1 MiB file of
// continuation lines, the largest a logical line may be, and 10,000 ordinary options.
//
// Usage: flotilla-bench-unitfile [--lines N] [--runs R]   (default 40,000 lines, 5 runs each)
import Glibc
import UnitFile

func nowNanoseconds() -> UInt64 {
    var spec = timespec()
    clock_gettime(CLOCK_MONOTONIC, &spec)
    return UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec)
}

func fail(_ message: String) -> Never {
    print(message)
    exit(2)
}

/// Fixed decimals without Foundation.
func format(_ value: Double, _ decimals: Int) -> String {
    var scale = 1.0
    for _ in 0..<decimals { scale *= 10 }
    let scaled = Int((value * scale).rounded())
    let whole = scaled / Int(scale), fraction = scaled % Int(scale)
    let digits = String(fraction)
    return decimals == 0 ? "\(whole)" : "\(whole).\(String(repeating: "0", count: decimals - digits.count))\(digits)"
}

struct Options {
    var lines = 40_000
    var runs = 5
}

func parseOptions() -> Options {
    var options = Options()
    var arguments = CommandLine.arguments.dropFirst().makeIterator()
    while let flag = arguments.next() {
        guard let value = arguments.next().flatMap({ Int($0) }), value > 0 else { fail("usage: flotilla-bench-unitfile [--lines N] [--runs R]") }
        switch flag {
        case "--lines": options.lines = value
        case "--runs": options.runs = value
        default: fail("unknown flag \(flag)")
        }
    }
    return options
}

let options = parseOptions()
let lines = options.lines

func continuationFile(lines: Int) -> [UInt8] {
    var bytes = Array("[Service]\nExecStart=/bin/true \\\n".utf8)
    bytes.reserveCapacity(bytes.count + lines * 3 + 2)
    for _ in 0..<lines { bytes += [UInt8(ascii: "a"), UInt8(ascii: "\\"), UInt8(ascii: "\n")] }
    bytes += Array("a\n".utf8)
    return bytes
}

/// Median milliseconds of `runs` parses; exits non-zero if the file does not parse.
func measure(_ name: String, _ bytes: [UInt8], runs: Int = options.runs) -> Double {
    var samples: [Double] = []
    for _ in 0..<runs {
        let start = nowNanoseconds()
        do {
            let file = try UnitFile(parsing: bytes)
            precondition(!file.sections.isEmpty, "parsed to nothing")
        } catch {
            print("\(name): \(error)")
            exit(1)
        }
        samples.append(Double(nowNanoseconds() - start) / 1e6)
    }
    let median = samples.sorted()[samples.count / 2]
    print("\(name): \(bytes.count) bytes, median \(format(median, 2)) ms of \(runs)")
    return median
}

let small = measure("\(lines) continuation lines", continuationFile(lines: lines))
let large = measure("\(4 * lines) continuation lines", continuationFile(lines: 4 * lines))
print("ratio 4N / N: \(format(large / max(small, 0.001), 2)) (linear: about 4)")
// 1 MiB in all: 3 bytes per line; the joined line stays under the 1 MiB logical-line limit.
_ = measure("1 MiB of continuation lines", continuationFile(lines: (1 << 20) / 3 - 20))
var manyOptions = Array("[Service]\n".utf8)
for index in 0..<10_000 { manyOptions += Array("Environment=KEY\(index)=value\(index)\n".utf8) }
_ = measure("10,000 options", manyOptions)

// The glob's worst case: the longest pattern (256 bytes of `*a`, each star a token that keeps
// every position alive) against the longest unit name that almost matches (255 bytes of `a`
// and a `b` before the suffix), then 64 of them, the most one unit may give in Conflicts=.
let worstPattern = String(repeating: "*a", count: Glob.patternLengthMax / 2 - 1) + "*x"
let worstName = String(repeating: "a", count: UnitName.lengthMax - 9) + "b.service"
guard let worstGlob = try? Glob(worstPattern) else { fail("the worst-case pattern does not compile") }
var globSamples: [Double] = []
for _ in 0..<options.runs {
    let start = nowNanoseconds()
    var matches = 0
    for _ in 0..<FleetOptions.patternsMax where worstGlob.matches(worstName) { matches += 1 }
    precondition(matches == 0, "the worst-case pattern matched")
    globSamples.append(Double(nowNanoseconds() - start) / 1e6)
}
let globMedian = globSamples.sorted()[globSamples.count / 2]
print("glob worst case: \(worstPattern.utf8.count)-byte pattern, \(worstName.utf8.count)-byte name, \(FleetOptions.patternsMax) matches: median \(format(globMedian, 3)) ms (\(format(globMedian * 1000 / Double(FleetOptions.patternsMax), 1)) us per match) of \(options.runs)")
