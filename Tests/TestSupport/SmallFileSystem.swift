import Foundation

/// A tmpfs of a few hundred KiB mounted on a directory: a real file system that really fills up,
/// so a write past its size fails with ENOSPC as on a full disk. Mounting needs root with
/// CAP_SYS_ADMIN (CI runs as root); `missingCapability` names what is missing elsewhere.
public struct SmallFileSystem: Sendable {
    public let path: String

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// Nil when a tmpfs can be mounted here, else why not (for `.enabled(if:)`).
    public static let missingCapability: String? = {
        let probe = FileManager.default.temporaryDirectory.appendingPathComponent("flotilla-mount-probe-\(UUID().uuidString.prefix(8))").path
        defer { try? FileManager.default.removeItem(atPath: probe) }
        do {
            let mounted = try mount(at: probe, bytes: 64 * 1024)
            try mounted.unmount()
            return nil
        } catch {
            return "mounting a tmpfs (root with CAP_SYS_ADMIN): \(error)"
        }
    }()

    /// Creates `path` if needed and mounts a tmpfs of `bytes` on it.
    public static func mount(at path: String, bytes: Int) throws -> SmallFileSystem {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        try run(["/bin/mount", "-t", "tmpfs", "-o", "size=\(bytes),mode=0700", "tmpfs", path])
        return SmallFileSystem(path: path)
    }

    /// Writes zeros to a file in it until the file system refuses (ENOSPC); what stays free is
    /// less than a page.
    public func fill() throws {
        let result = try ChildProcess.run(["/bin/dd", "if=/dev/zero", "of=\(path)/filler", "bs=4096"], timeoutSeconds: 60)
        guard result.standardError.contains("No space left on device") else {
            throw Failure(description: "dd did not fill \(path): status \(result.status), \(result.standardError)")
        }
    }

    /// Removes what `fill` wrote, so that writes succeed again.
    public func makeRoom() throws {
        try FileManager.default.removeItem(atPath: "\(path)/filler")
    }

    public func unmount() throws {
        try Self.run(["/bin/umount", "-l", path])
    }

    static func run(_ arguments: [String]) throws {
        let result = try ChildProcess.run(arguments, timeoutSeconds: 30)
        guard result.status == 0 else {
            throw Failure(description: "\(arguments.joined(separator: " ")) exited \(result.status): \(result.standardError)")
        }
    }
}
