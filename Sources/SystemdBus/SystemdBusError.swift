/// Every operating error SystemdBus reports. Errors that systemd or the bus sent keep systemd's
/// own D-Bus error name and message, so a log line says what systemd said.
public enum SystemdBusError: Error, Sendable, Equatable, CustomStringConvertible {
    /// `org.freedesktop.systemd1.NoSuchUnit`.
    case noSuchUnit(message: String)
    /// `org.freedesktop.systemd1.UnitMasked`.
    case unitMasked(message: String)
    /// The unit file could not be loaded: `org.freedesktop.systemd1.LoadFailed`,
    /// `BadUnitSetting`, or `org.freedesktop.DBus.Error.InvalidArgs` on a unit-file call.
    case badUnitFile(name: String, message: String)
    /// `org.freedesktop.DBus.Error.AccessDenied` or `InteractiveAuthorizationRequired`.
    case accessDenied(message: String)
    /// The job systemd ran for a start/stop/restart ended with a result other than `done`.
    case jobFailed(unit: String, result: JobResult)
    /// The call or the job got no answer within its timeout (sd-bus's own timeout, or ours).
    case timedOut(operation: String)
    /// The connection died while the call was in flight; the client reconnects by itself.
    case disconnected(reason: String)
    /// No connection right now (never connected, closed, or reconnecting).
    case notConnected
    /// More calls are queued than `SystemdBusConfiguration.queuedCallsMax` allows.
    case overloaded(queuedCallsMax: Int)
    /// `watch` would track more units than `SystemdBusConfiguration.watchedUnitsMax`.
    case tooManyWatchedUnits(watchedUnitsMax: Int)
    /// Any other D-Bus error, by its name and message.
    case bus(name: String, message: String)
    /// A libsystemd function returned `-errno`.
    case system(operation: String, errno: Int32)
    /// A reply did not have the shape the D-Bus API documents.
    case malformedReply(String)
    /// A unit file could not be written or read on disk.
    case unitFileIO(path: String, errno: Int32)

    public var description: String {
        switch self {
        case .noSuchUnit(let message): "no such unit: \(message)"
        case .unitMasked(let message): "unit masked: \(message)"
        case .badUnitFile(let name, let message): "bad unit file (\(name)): \(message)"
        case .accessDenied(let message): "access denied: \(message)"
        case .jobFailed(let unit, let result): "job for \(unit) ended with result '\(result.rawValue)'"
        case .timedOut(let operation): "timed out: \(operation)"
        case .disconnected(let reason): "disconnected: \(reason)"
        case .notConnected: "not connected to the bus"
        case .overloaded(let max): "more than \(max) calls queued"
        case .tooManyWatchedUnits(let max): "more than \(max) watched units"
        case .bus(let name, let message): "\(name): \(message)"
        case .system(let operation, let errno): "\(operation) failed: \(errnoName(errno))"
        case .malformedReply(let what): "malformed reply: \(what)"
        case .unitFileIO(let path, let errno): "\(path): \(errnoName(errno))"
        }
    }

    /// Maps a D-Bus error reply to a typed error. `busIsOpen` tells sd-bus's synthetic
    /// `NoReply` for a dead connection ("Connection terminated") apart from a call timeout.
    static func fromBusError(name: String, message: String, operation: String, busIsOpen: Bool)
        -> SystemdBusError
    {
        switch name {
        case "org.freedesktop.systemd1.NoSuchUnit":
            return .noSuchUnit(message: message)
        case "org.freedesktop.systemd1.UnitMasked":
            return .unitMasked(message: message)
        case "org.freedesktop.systemd1.LoadFailed", "org.freedesktop.systemd1.BadUnitSetting":
            return .badUnitFile(name: name, message: message)
        case "org.freedesktop.DBus.Error.AccessDenied",
            "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired":
            return .accessDenied(message: message)
        case "org.freedesktop.DBus.Error.NoReply", "org.freedesktop.DBus.Error.Timeout":
            return busIsOpen ? .timedOut(operation: operation) : .disconnected(reason: message)
        case "org.freedesktop.DBus.Error.Disconnected":
            return .disconnected(reason: message)
        default:
            return .bus(name: name, message: message)
        }
    }
}

func errnoName(_ code: Int32) -> String {
    guard let text = strerror(code) else { return "errno \(code)" }
    return "\(String(cString: text)) (errno \(code))"
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
