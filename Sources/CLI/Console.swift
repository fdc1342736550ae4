#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Locking

/// Where a command's output goes: the process's stdout and stderr, or (in tests) a buffer.
/// Carried as a task local so the commands stay plain ArgumentParser commands.
public final class Console: Sendable {
    public enum Stream: Sendable { case output, error }

    private final class Buffers: Sendable {
        let value = Locked((output: "", error: ""))
    }

    private let capture: Buffers?

    /// Writes to the process's stdout and stderr.
    public static let standard = Console(capturing: false)

    @TaskLocal public static var current: Console = .standard

    public init(capturing: Bool) {
        capture = capturing ? Buffers() : nil
    }

    public var capturedOutput: String { capture?.value.withLock { $0.output } ?? "" }
    public var capturedError: String { capture?.value.withLock { $0.error } ?? "" }

    public func write(_ text: String, to stream: Stream) {
        if let capture {
            capture.value.withLock { buffers in
                switch stream {
                case .output: buffers.output += text
                case .error: buffers.error += text
                }
            }
            return
        }
        var bytes = Array(text.utf8)
        let descriptor: Int32 = stream == .output ? 1 : 2
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeMutableBytes { buffer in
                Glibc.write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
            }
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else { return }  // A closed pipe: nothing more can be said.
            offset += written
        }
    }
}

func out(_ line: String) { Console.current.write(line + "\n", to: .output) }
func err(_ line: String) { Console.current.write(line + "\n", to: .error) }
