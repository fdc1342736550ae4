// flotilla-bench-wal: the cost of making Raft state durable with the write-ahead log.
//
// Two workloads on a real file system, each append followed by its fdatasync as a node's
// persist-before-send requires: (1) one entry per append, the worst case of a lightly loaded
// leader; (2) 64 entries per append, group commit under load. Each append also carries a hard
// state, as a Ready usually does. Reports entries/s and the p50/p99 latency of `append`, then the
// time `WriteAheadLog.open` takes to recover the batched log.
//
// Usage: flotilla-bench-wal [--directory DIR] [--single-appends N] [--batch-appends N]
//                           [--entry-bytes B]
// The directory (default: a new one under $TMPDIR or /tmp) must be on the disk to measure, not
// on tmpfs, where fsync costs nothing. It is removed at the end.
import Glibc
import Raft
import Storage

struct Options {
    var parentDirectory = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
    var singleAppends = 1000
    var batchAppends = 200
    var entriesPerBatch = 64
    var entryBytes = 128

    init(_ arguments: [String]) {
        var iterator = arguments.dropFirst().makeIterator()
        while let flag = iterator.next() {
            guard let value = iterator.next() else { Options.usage("missing value for \(flag)") }
            switch flag {
            case "--directory": parentDirectory = value
            case "--single-appends": singleAppends = Options.positive(value, flag)
            case "--batch-appends": batchAppends = Options.positive(value, flag)
            case "--entry-bytes": entryBytes = Options.positive(value, flag)
            default: Options.usage("unknown option \(flag)")
            }
        }
    }

    static func positive(_ value: String, _ flag: String) -> Int {
        guard let number = Int(value), number > 0, number <= 10_000_000 else { usage("\(flag) needs 1...10000000") }
        return number
    }

    static func usage(_ message: String) -> Never {
        print("flotilla-bench-wal: \(message)")
        print("usage: flotilla-bench-wal [--directory DIR] [--single-appends N] [--batch-appends N] [--entry-bytes B]")
        exit(2)
    }
}

struct Result {
    var label: String
    var appends: Int
    var entries: Int
    var seconds: Double
    var latenciesMicroseconds: [Double]

    func percentile(_ fraction: Double) -> Double {
        let sorted = latenciesMicroseconds.sorted()
        return sorted[min(sorted.count - 1, Int(Double(sorted.count) * fraction))]
    }

    var row: String {
        let entriesPerSecond = Double(entries) / seconds
        return "| \(label) | \(appends) | \(format(entriesPerSecond, 0)) | \(format(Double(appends) / seconds, 0)) | "
            + "\(format(percentile(0.5) / 1000, 2)) | \(format(percentile(0.99) / 1000, 2)) |"
    }
}

func format(_ value: Double, _ decimals: Int) -> String {
    var scale = 1.0
    for _ in 0..<decimals { scale *= 10 }
    let rounded = (value * scale).rounded() / scale
    return decimals == 0 ? String(Int(rounded)) : String(rounded)
}

func run(label: String, directory: String, appends: Int, entriesPerAppend: Int, entryBytes: Int) throws -> Result {
    let (log, _) = try WriteAheadLog.open(directory: directory, initialState: .bootstrap(voters: [NodeID(1)]))
    defer { log.close() }
    let payload = [UInt8](repeating: 0xA5, count: entryBytes)
    var latencies: [Double] = []
    latencies.reserveCapacity(appends)
    let clock = ContinuousClock()
    let start = clock.now
    for _ in 0..<appends {
        let first = log.lastIndex + 1
        let entries = (0..<UInt64(entriesPerAppend)).map {
            Entry(term: 1, index: first + $0, payload: .command(data: payload, stamp: ClientStamp(clientID: 1, sequence: first + $0)))
        }
        let batch = WriteBatch(entries: entries, hardState: HardState(term: 1, votedFor: NodeID(1), commitIndex: first))
        let before = clock.now
        try log.append(batch)
        let elapsed = clock.now - before
        latencies.append(Double(elapsed.components.seconds) * 1e6 + Double(elapsed.components.attoseconds) / 1e12)
    }
    let total = clock.now - start
    let seconds = Double(total.components.seconds) + Double(total.components.attoseconds) / 1e18
    return Result(label: label, appends: appends, entries: appends * entriesPerAppend, seconds: seconds,
                  latenciesMicroseconds: latencies)
}

/// The type of the file system holding `path`: the mount in /proc/self/mounts with the longest
/// mount point that is a prefix of it.
/// The floor: appending the same number of bytes to a plain file with write + fdatasync, no
/// encoding, no checksums. The log's 1-entry row can be no faster than this.
func runBaseline(directory: String, appends: Int, bytesPerAppend: Int) -> Result {
    let path = directory + "/baseline"
    let descriptor = open(path, O_WRONLY | O_CREAT | O_APPEND, 0o644)
    precondition(descriptor >= 0, "open \(path): errno \(errno)")
    defer { close(descriptor) }
    let bytes = [UInt8](repeating: 0x5A, count: bytesPerAppend)
    var latencies: [Double] = []
    let clock = ContinuousClock()
    let start = clock.now
    for _ in 0..<appends {
        let before = clock.now
        let written = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress!, $0.count) }
        precondition(written == bytes.count && fdatasync(descriptor) == 0, "baseline write failed: errno \(errno)")
        let elapsed = clock.now - before
        latencies.append(Double(elapsed.components.seconds) * 1e6 + Double(elapsed.components.attoseconds) / 1e12)
    }
    let total = clock.now - start
    let seconds = Double(total.components.seconds) + Double(total.components.attoseconds) / 1e18
    return Result(label: "baseline: write + fdatasync of \(bytesPerAppend) bytes, no log", appends: appends, entries: appends,
                  seconds: seconds, latenciesMicroseconds: latencies)
}

func fileSystemName(_ path: String) -> String {
    guard let file = fopen("/proc/self/mounts", "r") else { return "unknown" }
    defer { fclose(file) }
    var best = (mountPoint: "", type: "unknown")
    var buffer = [CChar](repeating: 0, count: 4096)
    while fgets(&buffer, 4096, file) != nil {
        let line = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let fields = line.split(separator: " ")
        guard fields.count >= 3 else { continue }
        let mountPoint = String(fields[1])
        let covers = path == mountPoint || path.hasPrefix(mountPoint == "/" ? "/" : mountPoint + "/")
        if covers && mountPoint.count >= best.mountPoint.count { best = (mountPoint, String(fields[2])) }
    }
    return best.type == "tmpfs" ? "tmpfs (fsync is free: not a disk measurement)" : "\(best.type) (mounted at \(best.mountPoint))"
}

/// Removes the benchmark's directory: two levels of plain files.
func removeTree(_ path: String) {
    if let directory = opendir(path) {
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name == "." || name == ".." { continue }
            let child = path + "/" + name
            if unlink(child) != 0 { removeTree(child) }
        }
        closedir(directory)
    }
    rmdir(path)
}

func firstLine(_ path: String) -> String {
    guard let file = fopen(path, "r") else { return "?" }
    defer { fclose(file) }
    var buffer = [CChar](repeating: 0, count: 256)
    guard fgets(&buffer, 256, file) != nil else { return "?" }
    return String(decoding: buffer.prefix { $0 != 0 && $0 != 10 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

let options = Options(CommandLine.arguments)
var template = Array("\(options.parentDirectory)/flotilla-bench-wal-XXXXXX".utf8CString)
guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else {
    Options.usage("cannot create a directory under \(options.parentDirectory): errno \(errno)")
}
let directory = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)


var machine = utsname()
uname(&machine)
let kernel = withUnsafeBytes(of: machine.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
let memoryKibibytes = Double(firstLine("/proc/meminfo").split(separator: " ").dropFirst().first.flatMap { Double($0) } ?? 0)
print("Machine: \(sysconf(Int32(_SC_NPROCESSORS_ONLN))) cores, \(format(memoryKibibytes / 1024 / 1024, 1)) GiB RAM, kernel \(kernel); "
      + "directory \(options.parentDirectory) on \(fileSystemName(options.parentDirectory)); entries of \(options.entryBytes) bytes")
print("")
print("| workload | appends | entries/s | appends (syncs)/s | p50 append, ms | p99 append, ms |")
print("|---|---|---|---|---|---|")
do {
    print(runBaseline(directory: directory, appends: options.singleAppends, bytesPerAppend: options.entryBytes + 100).row)
    let single = try run(label: "1 entry per append", directory: directory + "/single",
                         appends: options.singleAppends, entriesPerAppend: 1, entryBytes: options.entryBytes)
    print(single.row)
    let batched = try run(label: "\(options.entriesPerBatch) entries per append", directory: directory + "/batched",
                          appends: options.batchAppends, entriesPerAppend: options.entriesPerBatch, entryBytes: options.entryBytes)
    print(batched.row)
    // Recovery: reading back and checking everything the batched run wrote.
    let clock = ContinuousClock()
    let start = clock.now
    let (_, state) = try WriteAheadLog.open(directory: directory + "/batched")
    let elapsed = clock.now - start
    let milliseconds = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
    print("")
    print("Recovery (open) of the batched log: \(state.entries.count) entries in \(format(milliseconds, 1)) ms.")
    removeTree(directory)
} catch {
    print("flotilla-bench-wal: \(error)")
    removeTree(directory)
    exit(1)
}
