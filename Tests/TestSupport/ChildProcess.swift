import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Runs a program to completion for the tests that drive real machines, with its output in
/// files rather than pipes (the test bed leaves daemons behind that inherit the child's
/// descriptors and would keep a pipe open, and a chatty command can never block on a full pipe).
///
/// posix_spawn and waitpid rather than Foundation's Process: on this Linux toolchain, inside
/// swift-testing, Process was seen never to notice its child's exit (the child stayed a zombie
/// and `isRunning` stayed true), which hung the suite.
public enum ChildProcess {
    public struct Result: Sendable {
        /// The exit status, or 128 + the signal that ended the child.
        public var status: Int32
        public var standardOutput: String
        public var standardError: String
    }

    public enum Failure: Error, Sendable {
        case couldNotStart(errno: Int32)
        case timedOut
        case waitFailed(errno: Int32)
    }

    /// Runs `arguments` (the first is the program's path) with the process environment plus
    /// `environment`; on timeout only the child started here is killed (SIGTERM, then reaped).
    public static func run(_ arguments: [String], environment: [String: String] = [:], timeoutSeconds: Double) throws(Failure) -> Result {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("flotilla-child-\(getpid())-\(UUID().uuidString)")
        do { try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true) } catch { throw .couldNotStart(errno: EIO) }
        defer { try? FileManager.default.removeItem(at: scratch) }
        let stdoutPath = scratch.appendingPathComponent("stdout").path
        let stderrPath = scratch.appendingPathComponent("stderr").path

        var fileActions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&fileActions)
        defer { posix_spawn_file_actions_destroy(&fileActions) }
        posix_spawn_file_actions_addopen(&fileActions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&fileActions, 1, stdoutPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&fileActions, 2, stderrPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        markDescriptorsCloseOnExec()

        // The child would inherit this thread's signal mask and ignored signals, and the test
        // runner's worker threads block signals: busybox nc's `-w` timeout (SIGALRM) then never
        // fires. Start the child with an empty mask and default handlers.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var emptySet = sigset_t()
        var fullSet = sigset_t()
        sigemptyset(&emptySet)
        sigfillset(&fullSet)
        posix_spawnattr_setsigmask(&attributes, &emptySet)
        posix_spawnattr_setsigdefault(&attributes, &fullSet)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let merged = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        var cArguments: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        var cEnvironment: [UnsafeMutablePointer<CChar>?] = merged.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            cArguments.forEach { free($0) }
            cEnvironment.forEach { free($0) }
        }
        var pid: pid_t = 0
        let spawnError = posix_spawn(&pid, arguments[0], &fileActions, &attributes, &cArguments, &cEnvironment)
        guard spawnError == 0 else { throw .couldNotStart(errno: spawnError) }

        var waitStatus: Int32 = 0
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        while true {
            let reaped = waitpid(pid, &waitStatus, WNOHANG)
            if reaped == pid { break }
            if reaped == -1 && errno != EINTR { throw .waitFailed(errno: errno) }
            if Date() >= deadline {
                // Our own child, still unreaped, so its PID cannot have been reused.
                kill(pid, SIGTERM)
                _ = waitpid(pid, &waitStatus, 0)
                throw .timedOut
            }
            usleep(10_000)
        }
        // WIFEXITED / WEXITSTATUS, spelled out: the C macros are not imported into Swift.
        let exited = waitStatus & 0x7f == 0
        return Result(
            status: exited ? (waitStatus >> 8) & 0xff : 128 + (waitStatus & 0x7f),
            standardOutput: (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? "",
            standardError: (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "")
    }
}

extension ChildProcess {
    /// `run` on a thread of its own, for async tests: the wait for the child never holds one of
    /// the cooperative pool's threads (two on CI), which every other suite's async tests need.
    public static func runOnOwnThread(_ arguments: [String], environment: [String: String] = [:],
                                      timeoutSeconds: Double) async throws -> Result {
        try await onDedicatedThread { try run(arguments, environment: environment, timeoutSeconds: timeoutSeconds) }
    }
}
