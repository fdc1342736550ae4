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

    /// The system manager's notify socket; a user manager's is `$XDG_RUNTIME_DIR/systemd/notify`.
    public static let systemNotifySocketPath = "/run/systemd/notify"

    /// Sends `states` to the manager listening on `socketPath` as if process `pid` sent them:
    /// the datagram carries `pid` in its SCM_CREDENTIALS, which the kernel accepts from a
    /// process with CAP_SYS_ADMIN (sd_pid_notify(3) "on behalf of other processes"). The manager
    /// then treats it as a message from that unit's main process, so `NotifyAccess=main` holds.
    /// This is how flotillad pings the watchdog of its lease unit, whose main process only
    /// sleeps. One datagram: nothing waits for systemd to read it.
    public static func notify(_ states: [NotifyState], onBehalfOf pid: Int32, socketPath: String) throws(SystemdBusError) {
        let text = Array(states.map(\.assignment).joined(separator: "\n").utf8)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let pathBytes = Array(socketPath.utf8)
        let pathCapacity = MemoryLayout.size(ofValue: address.sun_path)
        guard !pathBytes.isEmpty, pathBytes.count < pathCapacity else {
            throw .system(operation: "notify socket path \(socketPath)", errno: ENAMETOOLONG)
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: pathBytes)
            raw[pathBytes.count] = 0
        }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .system(operation: "socket for \(socketPath)", errno: errno) }
        defer { close(fd) }
        // The control message, laid out as CMSG_SPACE/CMSG_LEN do (Swift has no CMSG macros):
        // a cmsghdr, padded to size_t alignment, then the ucred.
        let alignment = MemoryLayout<Int>.size
        func aligned(_ size: Int) -> Int { (size + alignment - 1) & ~(alignment - 1) }
        let headerSize = aligned(MemoryLayout<cmsghdr>.size)
        // struct ucred { pid_t pid; uid_t uid; gid_t gid; } (<sys/socket.h> under _GNU_SOURCE, which
        // Swift's Glibc module does not define), and SCM_CREDENTIALS = 2.
        let credentials: (Int32, UInt32, UInt32) = (pid, getuid(), getgid())
        let credentialsSize = 12
        let scmCredentials: Int32 = 2
        var control = [UInt8](repeating: 0, count: headerSize + aligned(credentialsSize))
        control.withUnsafeMutableBytes { raw in
            var header = cmsghdr()
            header.cmsg_len = headerSize + credentialsSize
            header.cmsg_level = SOL_SOCKET
            header.cmsg_type = scmCredentials
            withUnsafeBytes(of: &header) { raw.copyMemory(from: $0) }
            withUnsafeBytes(of: credentials) { UnsafeMutableRawBufferPointer(rebasing: raw[headerSize...]).copyMemory(from: $0) }
        }
        let sent = text.withUnsafeBytes { textBytes in
            control.withUnsafeMutableBytes { controlBytes in
                withUnsafeMutablePointer(to: &address) { addressPointer in
                    var vector = iovec(iov_base: UnsafeMutableRawPointer(mutating: textBytes.baseAddress), iov_len: textBytes.count)
                    return withUnsafeMutablePointer(to: &vector) { vectorPointer in
                        var message = msghdr()
                        message.msg_name = UnsafeMutableRawPointer(addressPointer)
                        message.msg_namelen = socklen_t(MemoryLayout<sockaddr_un>.size)
                        message.msg_iov = vectorPointer
                        message.msg_iovlen = 1
                        message.msg_control = controlBytes.baseAddress
                        message.msg_controllen = controlBytes.count
                        return sendmsg(fd, &message, Int32(MSG_NOSIGNAL))
                    }
                }
            }
        }
        guard sent == text.count else { throw .system(operation: "sendmsg to \(socketPath) for pid \(pid)", errno: errno) }
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
