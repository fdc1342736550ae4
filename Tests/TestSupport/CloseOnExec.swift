#if canImport(Glibc)
import Glibc
#endif

/// Marks every descriptor of this process above 2 close-on-exec, just before a spawn.
///
/// SwiftNIO creates its sockets without SOCK_CLOEXEC, so a long-lived child (a test-bed machine,
/// a dbus-daemon) would otherwise keep other tests' listening sockets open, and a peer restarting
/// on its port would find it in use (seen as EADDRINUSE in full test runs). The spawned command
/// gets its 0-2 from explicit file actions, so it loses nothing it needs.
public func markDescriptorsCloseOnExec() {
    guard let directory = opendir("/proc/self/fd") else { return }
    defer { closedir(directory) }
    let own = dirfd(directory)
    while let entry = readdir(directory) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        guard let fd = Int32(name), fd > 2, fd != own else { continue }
        let flags = fcntl(fd, F_GETFD)
        if flags >= 0 && flags & FD_CLOEXEC == 0 { _ = fcntl(fd, F_SETFD, flags | FD_CLOEXEC) }
    }
}
