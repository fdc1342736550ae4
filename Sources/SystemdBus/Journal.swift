import CSystemd
import Foundation

/// Which journal files to read.
public enum JournalSource: Sendable, Hashable {
    /// This machine's journal (`sd_journal_open` with SD_JOURNAL_LOCAL_ONLY).
    case local
    /// All journal files in a directory and its machine-id subdirectories, e.g. a test bed
    /// machine's volatile journal at `/proc/PID/root/run/log/journal`.
    case directory(String)
    /// These journal files.
    case files([String])
}

/// One journal entry with its fields. Values that are not UTF-8 are decoded leniently.
public struct JournalEntry: Sendable, Hashable {
    public var cursor: String
    /// CLOCK_REALTIME microseconds since the epoch.
    public var realtimeMicroseconds: UInt64
    public var fields: [String: String]

    public var message: String { fields["MESSAGE"] ?? "" }
    public var priority: Int? { fields["PRIORITY"].flatMap { Int($0) } }
    /// The unit the entry is about: systemd's own messages (from PID 1, whose `_SYSTEMD_UNIT` is
    /// init.scope) name it in `UNIT`; a unit's processes are in it by `_SYSTEMD_UNIT`.
    public var unit: String? { fields["_PID"] == "1" ? fields["UNIT"] : fields["_SYSTEMD_UNIT"] }
}

/// A unit's journal, read through sd-journal.
///
/// An `sd_journal` handle is not thread-safe, and its calls block on disk; each read therefore
/// runs on a thread of its own, which owns its handle from open to close.
public enum UnitJournal {
    /// Fields per entry kept; the rest are dropped.
    public static let fieldsPerEntryMax = 256
    /// Bytes per field value read (sd_journal_set_data_threshold).
    public static let fieldBytesMax = 64 * 1024
    /// Entries `lastEntries` returns at most.
    public static let lastEntriesMax = 100_000

    /// The last `count` entries of `unit`, oldest first: its processes' output
    /// (`_SYSTEMD_UNIT=unit`) and what systemd logged about it (`UNIT=unit` from PID 1), as
    /// `journalctl -u` shows.
    public static func lastEntries(unit: UnitName, count: Int, source: JournalSource = .local) async throws -> [JournalEntry] {
        precondition(count >= 0 && count <= lastEntriesMax, "count must be in 0...\(lastEntriesMax), is \(count)")
        return try await onDedicatedThread {
            let journal = try JournalHandle(source: source, unit: unit)
            return try journal.tail(count)
        }
    }

    /// The last `backlog` entries of `unit`, then every new one as it is written, until the
    /// consumer stops iterating. Buffers at most `bufferedEntriesMax` entries for a slow
    /// consumer and drops the oldest beyond that (a log tail prefers the newest lines).
    public static func follow(
        unit: UnitName, source: JournalSource = .local, backlog: Int = 10, bufferedEntriesMax: Int = 4096
    ) -> AsyncThrowingStream<JournalEntry, any Error> {
        precondition(backlog >= 0 && bufferedEntriesMax >= 1, "backlog >= 0 and bufferedEntriesMax >= 1")
        let (stream, continuation) = AsyncThrowingStream.makeStream(
            of: JournalEntry.self, bufferingPolicy: .bufferingNewest(bufferedEntriesMax))
        let stop = StopSignal()
        continuation.onTermination = { _ in stop.signal() }
        Thread.detachNewThread {
            do {
                let journal = try JournalHandle(source: source, unit: unit)
                for entry in try journal.tail(backlog) { continuation.yield(entry) }
                try journal.followNew(stopFD: stop.fd) { continuation.yield($0) }
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
            }
        }
        return stream
    }

    static func onDedicatedThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread {
                continuation.resume(with: Result { try body() })
            }
        }
    }
}

/// An eventfd that tells a follow thread to stop. Shared by the thread and the stream's
/// termination handler; closed when both have let go, so neither can use a closed (or reused)
/// descriptor.
final class StopSignal: Sendable {
    let fd: Int32

    init() {
        fd = eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK))
        precondition(fd >= 0, "eventfd failed: \(errnoName(errno))")
    }

    func signal() {
        var one: UInt64 = 1
        _ = withUnsafeBytes(of: &one) { write(fd, $0.baseAddress, 8) }
    }

    deinit { close(fd) }
}

/// An open sd_journal, confined to the thread that made it.
final class JournalHandle {
    private var journal: OpaquePointer?

    init(source: JournalSource, unit: UnitName) throws(SystemdBusError) {
        var handle: OpaquePointer? = nil
        var rc: Int32
        switch source {
        case .local:
            rc = sd_journal_open(&handle, Int32(SD_JOURNAL_LOCAL_ONLY))
        case .directory(let path):
            rc = sd_journal_open_directory(&handle, path, 0)
        case .files(let paths):
            var cStrings = paths.map { strdup($0) }
            cStrings.append(nil)
            defer { for pointer in cStrings { free(pointer) } }
            var constStrings = cStrings.map { $0.map { UnsafePointer($0) } }
            rc = sd_journal_open_files(&handle, &constStrings, 0)
        }
        guard rc >= 0, let handle else { throw .system(operation: "sd_journal_open \(source)", errno: -rc) }
        journal = handle
        _ = sd_journal_set_data_threshold(handle, UnitJournal.fieldBytesMax)
        try addUnitMatches(unit)
    }

    deinit {
        if let journal { sd_journal_close(journal) }
    }

    /// (_SYSTEMD_UNIT=unit) OR (UNIT=unit AND _PID=1): the unit's own output and what systemd
    /// said about it. Matches on different fields are ANDed, sd_journal_add_disjunction ORs.
    private func addUnitMatches(_ unit: UnitName) throws(SystemdBusError) {
        try addMatch("_SYSTEMD_UNIT=" + unit.rawValue)
        try check(sd_journal_add_disjunction(journal), "sd_journal_add_disjunction")
        try addMatch("UNIT=" + unit.rawValue)
        try addMatch("_PID=1")
    }

    private func addMatch(_ match: String) throws(SystemdBusError) {
        var bytes = Array(match.utf8)
        let rc = bytes.withUnsafeMutableBytes { sd_journal_add_match(journal, $0.baseAddress, $0.count) }
        try check(rc, "sd_journal_add_match")
    }

    private func check(_ rc: Int32, _ operation: String) throws(SystemdBusError) {
        if rc < 0 { throw .system(operation: operation, errno: -rc) }
    }

    /// The last `count` entries, oldest first; leaves the read position at the newest.
    func tail(_ count: Int) throws(SystemdBusError) -> [JournalEntry] {
        try check(sd_journal_seek_tail(journal), "sd_journal_seek_tail")
        var entries: [JournalEntry] = []
        entries.reserveCapacity(count)
        while entries.count < count {
            let rc = sd_journal_previous(journal)
            try check(rc, "sd_journal_previous")
            if rc == 0 { break }
            entries.append(try readEntry())
        }
        // Put the read position back on the newest entry, so `followNew` starts after it.
        try check(sd_journal_seek_tail(journal), "sd_journal_seek_tail")
        if sd_journal_previous(journal) < 0 { throw .system(operation: "sd_journal_previous", errno: EIO) }
        return entries.reversed()
    }

    /// Reads entries after the current position as they are written, until `stopFD` is readable.
    func followNew(stopFD: Int32, _ emit: (JournalEntry) -> Void) throws(SystemdBusError) {
        let fd = sd_journal_get_fd(journal)
        try check(fd, "sd_journal_get_fd")
        while true {
            while true {
                let rc = sd_journal_next(journal)
                try check(rc, "sd_journal_next")
                if rc == 0 { break }
                emit(try readEntry())
            }
            var timeoutUsec: UInt64 = UInt64.max
            _ = sd_journal_get_timeout(journal, &timeoutUsec)
            var timeoutMilliseconds: Int32 = -1
            if timeoutUsec != UInt64.max {
                var now = timespec()
                clock_gettime(CLOCK_MONOTONIC, &now)
                let nowUsec = UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1000
                timeoutMilliseconds = Int32(min((timeoutUsec > nowUsec ? timeoutUsec - nowUsec : 0) / 1000 + 1, 60_000))
            }
            var fds = [
                pollfd(fd: fd, events: Int16(sd_journal_get_events(journal)), revents: 0),
                pollfd(fd: stopFD, events: Int16(POLLIN), revents: 0),
            ]
            let rc = poll(&fds, 2, timeoutMilliseconds)
            if rc < 0 && errno != EINTR { throw .system(operation: "poll", errno: errno) }
            if fds[1].revents != 0 { return }
            try check(sd_journal_process(journal), "sd_journal_process")
        }
    }

    private func readEntry() throws(SystemdBusError) -> JournalEntry {
        var realtime: UInt64 = 0
        try check(sd_journal_get_realtime_usec(journal, &realtime), "sd_journal_get_realtime_usec")
        var cursorPointer: UnsafeMutablePointer<CChar>? = nil
        try check(sd_journal_get_cursor(journal, &cursorPointer), "sd_journal_get_cursor")
        let cursor = cursorPointer.map { String(cString: $0) } ?? ""
        free(cursorPointer)
        var fields: [String: String] = [:]
        sd_journal_restart_data(journal)
        var data: UnsafeRawPointer? = nil
        var length = 0
        while fields.count < UnitJournal.fieldsPerEntryMax, sd_journal_enumerate_data(journal, &data, &length) > 0 {
            guard let data else { continue }
            let bytes = UnsafeRawBufferPointer(start: data, count: length)
            guard let equals = bytes.firstIndex(of: UInt8(ascii: "=")) else { continue }
            let key = String(decoding: bytes[..<equals], as: UTF8.self)
            fields[key] = String(decoding: bytes[(equals + 1)...], as: UTF8.self)
        }
        return JournalEntry(cursor: cursor, realtimeMicroseconds: realtime, fields: fields)
    }
}
