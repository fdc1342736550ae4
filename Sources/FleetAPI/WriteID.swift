/// The idempotency key of one write (a unit's PUT or DELETE), chosen where the write enters the
/// cluster and carried with it on every forward and retry, so that the registry applies it once
/// however many copies reach a leader (it is the write's `ClientStamp`; the registry remembers
/// the result of the last few thousand).
///
/// Why: a peer that forwards a write and hears nothing back (its leader frozen, cut off, killed)
/// sends it again to the next leader; the first copy can still be taken off the old leader's
/// socket seconds later, forwarded in turn, and applied over the writes made since
/// (Contrib/chaos saw an old target change undo a later create). With one key for both copies,
/// the late one is answered from the first one's result and changes nothing.
///
/// Clients may send their own key in `headerName` to retry a write safely; without one, the
/// peer that receives the write draws one.
public struct WriteID: Hashable, Sendable, CustomStringConvertible {
    /// Never 0 (the header's parser refuses it), so that no key is a default value.
    public let rawValue: UInt64

    public static let headerName = "X-Flotilla-Write-ID"

    /// The key of the write this task is making or relaying.
    @TaskLocal public static var current: WriteID?

    /// Runs `body` with `current` set to `id`, keeping the body's typed error (the task-local's
    /// own `withValue` only rethrows untyped ones).
    public static func with<T, Failure: Error>(_ id: WriteID?, _ body: () async throws(Failure) -> T) async throws(Failure) -> T {
        let result: Result<T, Failure> = await $current.withValue(id) {
            do throws(Failure) {
                return .success(try await body())
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    public init?(rawValue: UInt64) {
        guard rawValue != 0 else { return nil }
        self.rawValue = rawValue
    }

    public static func random() -> WriteID {
        var generator = SystemRandomNumberGenerator()
        return WriteID(rawValue: generator.next(upperBound: UInt64.max) + 1)!
    }

    /// Exactly 16 hex digits, not all zero.
    public init?(headerValue: String) {
        let bytes = Array(headerValue.utf8)
        guard bytes.count == 16, bytes.allSatisfy({ $0.isHexDigit }), let value = UInt64(headerValue, radix: 16) else { return nil }
        self.init(rawValue: value)
    }

    public var headerValue: String {
        let digits = String(rawValue, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }

    public var description: String { headerValue }
}

private extension UInt8 {
    var isHexDigit: Bool {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(self) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(self)
            || (UInt8(ascii: "A")...UInt8(ascii: "F")).contains(self)
    }
}
