import CSystemd

/// One assignment of the sd_notify protocol (sd_notify(3)).
public enum NotifyState: Sendable, Hashable {
    /// `READY=1`: start-up finished (Type=notify units become active only now).
    case ready
    /// `STOPPING=1`: shutdown has begun.
    case stopping
    /// `RELOADING=1`: reloading configuration; send `.ready` when done.
    case reloading
    /// `WATCHDOG=1`: keep-alive ping for `WatchdogSec=`.
    case watchdog
    /// `STATUS=...`: a one-line status shown by `systemctl status`.
    case status(String)
    /// `MAINPID=...`.
    case mainPID(Int32)
    /// Any other `KEY=VALUE` assignment.
    case custom(key: String, value: String)

    var assignment: String {
        switch self {
        case .ready: "READY=1"
        case .stopping: "STOPPING=1"
        case .reloading: "RELOADING=1"
        case .watchdog: "WATCHDOG=1"
        // A newline would start a new assignment: status is one line by definition.
        case .status(let text): "STATUS=" + text.replacingNewlines()
        case .mainPID(let pid): "MAINPID=\(pid)"
        case .custom(let key, let value): "\(key)=\(value.replacingNewlines())"
        }
    }
}

/// Talks to the service manager that started this process, through libsystemd's sd_notify.
public enum SystemdNotifier {
    /// Sends `states` in one datagram to `$NOTIFY_SOCKET`. Returns false when the process was not
    /// started with a notify socket (not under systemd, or not Type=notify and no NotifyAccess),
    /// which is not an error for a daemon that may also run by hand.
    @discardableResult
    public static func notify(_ states: [NotifyState]) throws(SystemdBusError) -> Bool {
        let text = states.map(\.assignment).joined(separator: "\n")
        let rc = sd_notify(0, text)
        if rc < 0 { throw .system(operation: "sd_notify", errno: -rc) }
        return rc > 0
    }

    /// The watchdog interval systemd expects pings within (`WatchdogSec=`), or nil when the
    /// watchdog is off. Ping at half of it, as sd_watchdog_enabled(3) advises.
    public static func watchdogInterval() throws(SystemdBusError) -> Duration? {
        var usec: UInt64 = 0
        let rc = sd_watchdog_enabled(0, &usec)
        if rc < 0 { throw .system(operation: "sd_watchdog_enabled", errno: -rc) }
        return rc > 0 ? .microseconds(Int64(usec)) : nil
    }

    /// True when stderr is connected to the journal, so a log handler may choose journald.
    public static var isStandardErrorJournal: Bool {
        sd_journal_stream_fd_is_journal()
    }
}

private func sd_journal_stream_fd_is_journal() -> Bool {
    // $JOURNAL_STREAM is "device:inode" of the journal stream systemd connected stderr to.
    guard let value = getenv("JOURNAL_STREAM") else { return false }
    let parts = String(cString: value).split(separator: ":")
    guard parts.count == 2, let device = UInt64(parts[0]), let inode = UInt64(parts[1]) else { return false }
    var info = stat()
    guard fstat(2, &info) == 0 else { return false }
    return UInt64(info.st_dev) == device && UInt64(info.st_ino) == inode
}

extension String {
    func replacingNewlines() -> String {
        String(map { $0 == "\n" || $0 == "\r" ? " " : $0 })
    }
}

#if canImport(Glibc)
import Glibc
#endif
