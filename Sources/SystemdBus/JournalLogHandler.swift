import CSystemd
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// A swift-log handler that writes structured entries to journald with sd_journal_sendv.
///
/// Each entry carries MESSAGE, PRIORITY (syslog levels), SYSLOG_IDENTIFIER, the source location
/// (CODE_FILE, CODE_LINE, CODE_FUNC), LOGGER_LABEL, and every metadata item as a field of its
/// own, its key upper-cased with other characters turned into `_` (journal field names allow
/// only `[A-Z0-9_]` and may not start with `_` or a digit), so `journalctl KEY=value` finds it.
public struct JournalLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    public var metadataProvider: Logger.MetadataProvider?
    public let label: String
    public let syslogIdentifier: String

    /// Fields longer than this are cut: journald's own limit on an entry is far larger, but one
    /// runaway value should not cost megabytes per line.
    public static let fieldValueBytesMax = 64 * 1024
    /// Metadata items beyond this many are dropped (after the fixed fields).
    public static let metadataFieldsMax = 64

    public init(label: String, syslogIdentifier: String = "flotillad", metadataProvider: Logger.MetadataProvider? = nil) {
        self.label = label
        self.syslogIdentifier = syslogIdentifier
        self.metadataProvider = metadataProvider
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        let fields = JournalLogHandler.fields(
            level: event.level, message: event.message.description, metadata: merged,
            label: label, syslogIdentifier: syslogIdentifier, source: event.source,
            file: event.file, function: event.function, line: event.line)
        _ = JournalLogHandler.send(fields)
    }

    /// The journal fields of one entry, as `KEY=value` strings. Pure, for tests.
    public static func fields(
        level: Logger.Level, message: String, metadata: Logger.Metadata, label: String,
        syslogIdentifier: String, source: String, file: String, function: String, line: UInt
    ) -> [String] {
        var fields = [
            "MESSAGE=" + message,
            "PRIORITY=\(priority(level))",
            "SYSLOG_IDENTIFIER=" + syslogIdentifier,
            "LOGGER_LABEL=" + label,
            "LOGGER_SOURCE=" + source,
            "CODE_FILE=" + file,
            "CODE_LINE=\(line)",
            "CODE_FUNC=" + function,
        ]
        let reserved = Set(fields.map { String($0.prefix { $0 != "=" }) })
        for (key, value) in metadata.sorted(by: { $0.key < $1.key }).prefix(metadataFieldsMax) {
            let name = fieldName(key)
            if reserved.contains(name) { continue }
            fields.append(name + "=" + "\(value)")
        }
        return fields.map { field in
            field.utf8.count > fieldValueBytesMax ? String(decoding: field.utf8.prefix(fieldValueBytesMax), as: UTF8.self) : field
        }
    }

    /// syslog(3) priorities, as journald stores them.
    public static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }

    /// A journal field name for a metadata key: `[A-Z0-9_]`, not starting with `_` or a digit,
    /// at most 64 bytes (journald's limit).
    public static func fieldName(_ key: String) -> String {
        var name = String(key.uppercased().unicodeScalars.map { scalar -> Character in
            let isAllowed = (scalar >= "A" && scalar <= "Z") || (scalar >= "0" && scalar <= "9")
            return isAllowed ? Character(scalar) : "_"
        })
        if name.isEmpty || name.first == "_" || name.first!.isNumber { name = "M" + name }
        return String(name.prefix(64))
    }

    /// Sends fields with sd_journal_sendv; returns libsystemd's result (negative errno on error).
    /// Logging must never throw or block the caller for long: a failure is returned, not raised.
    @discardableResult
    public static func send(_ fields: [String]) -> Int32 {
        // One contiguous buffer, so every iovec points into memory valid for the whole call.
        var bytes: [UInt8] = []
        var ranges: [Range<Int>] = []
        for field in fields {
            let start = bytes.count
            bytes.append(contentsOf: field.utf8)
            ranges.append(start..<bytes.count)
        }
        return bytes.withUnsafeMutableBytes { raw in
            var vectors = ranges.map { range in
                iovec(iov_base: raw.baseAddress.map { $0 + range.lowerBound }, iov_len: range.count)
            }
            return sd_journal_sendv(&vectors, Int32(vectors.count))
        }
    }
}
