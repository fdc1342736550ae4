import FleetAPI
import Foundation
import SystemdBus

/// journalctl's output modes for the entries a unit's machine reads (fleetctl ran journalctl
/// over SSH with `--output`; Flotilla formats on the machine and sends lines).
enum JournalFormat {
    static func lines(_ entry: JournalEntry, _ output: JournalOutput) -> [String] {
        switch output {
        case .short: return [prefix(entry, date: shortDate(entry)) + entry.message]
        case .shortISO: return [prefix(entry, date: isoDate(entry)) + entry.message]
        case .cat: return [entry.message]
        case .json:
            var fields = entry.fields
            fields["__CURSOR"] = entry.cursor
            fields["__REALTIME_TIMESTAMP"] = String(entry.realtimeMicroseconds)
            let data = (try? JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
            return [String(decoding: data, as: UTF8.self)]
        case .verbose:
            return ["\(isoDate(entry)) [\(entry.cursor)]"] + entry.fields.keys.sorted().map { "    \($0)=\(entry.fields[$0]!)" }
        }
    }

    private static func prefix(_ entry: JournalEntry, date: String) -> String {
        let identifier = entry.fields["SYSLOG_IDENTIFIER"] ?? entry.fields["_COMM"] ?? "?"
        let pid = entry.fields["_PID"].map { "[\($0)]" } ?? ""
        let host = entry.fields["_HOSTNAME"] ?? ""
        return "\(date) \(host) \(identifier)\(pid): "
    }

    private static func date(_ entry: JournalEntry) -> Date {
        Date(timeIntervalSince1970: Double(entry.realtimeMicroseconds) / 1_000_000)
    }

    private static func shortDate(_ entry: JournalEntry) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "MMM dd HH:mm:ss"
        return formatter.string(from: date(entry))
    }

    private static func isoDate(_ entry: JournalEntry) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter.string(from: date(entry))
    }
}
