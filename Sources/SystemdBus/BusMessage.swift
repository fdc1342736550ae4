import CSystemd

#if canImport(Glibc)
import Glibc
#endif

/// Reads a received sd_bus_message in place. Valid only while the message is (inside the reply
/// or signal callback); it never escapes the event loop thread.
struct MessageReader {
    let message: OpaquePointer

    private func check(_ rc: Int32, _ what: String) throws(SystemdBusError) -> Int32 {
        if rc < 0 { throw .malformedReply("\(what): \(errnoName(-rc))") }
        return rc
    }

    func readString() throws(SystemdBusError) -> String {
        try readStringLike(type: "s")
    }

    func readObjectPath() throws(SystemdBusError) -> String {
        try readStringLike(type: "o")
    }

    private func readStringLike(type: Character) throws(SystemdBusError) -> String {
        var pointer: UnsafePointer<CChar>? = nil
        let rc = try check(sd_bus_message_read_basic(message, CChar(type.asciiValue!), &pointer), "read \(type)")
        guard rc > 0, let pointer else { throw .malformedReply("expected \(type), found end") }
        return String(cString: pointer)
    }

    func readUInt32() throws(SystemdBusError) -> UInt32 { try readBasic(type: "u", 0 as UInt32) }
    func readInt32() throws(SystemdBusError) -> Int32 { try readBasic(type: "i", 0 as Int32) }
    func readUInt64() throws(SystemdBusError) -> UInt64 { try readBasic(type: "t", 0 as UInt64) }
    func readInt64() throws(SystemdBusError) -> Int64 { try readBasic(type: "x", 0 as Int64) }
    func readBool() throws(SystemdBusError) -> Bool { try readBasic(type: "b", 0 as Int32) != 0 }

    private func readBasic<T: BitwiseCopyable>(type: Character, _ initial: T) throws(SystemdBusError) -> T {
        var value = initial
        let rc = try check(sd_bus_message_read_basic(message, CChar(type.asciiValue!), &value), "read \(type)")
        if rc == 0 { throw .malformedReply("expected \(type), found end") }
        return value
    }

    /// Enters a container; false at the end of the enclosing one (how arrays are iterated).
    func enter(_ type: Character, _ contents: String) throws(SystemdBusError) -> Bool {
        try check(sd_bus_message_enter_container(message, CChar(type.asciiValue!), contents), "enter \(type)\(contents)") > 0
    }

    func exit() throws(SystemdBusError) {
        _ = try check(sd_bus_message_exit_container(message), "exit container")
    }

    func skip(_ types: String?) throws(SystemdBusError) {
        _ = try check(sd_bus_message_skip(message, types), "skip")
    }

    /// The type and contents signature of the next element, or nil at the end of a container.
    func peek() throws(SystemdBusError) -> (type: Character, contents: String?)? {
        var type: CChar = 0
        var contents: UnsafePointer<CChar>? = nil
        let rc = try check(sd_bus_message_peek_type(message, &type, &contents), "peek")
        if rc == 0 { return nil }
        return (Character(Unicode.Scalar(UInt8(bitPattern: type))), contents.map { String(cString: $0) })
    }

    /// Reads `a(sss)`, the unit-file change list of LinkUnitFiles/EnableUnitFiles/DisableUnitFiles.
    func readUnitFileChanges() throws(SystemdBusError) -> [UnitFileChange] {
        var changes: [UnitFileChange] = []
        guard try enter("a", "(sss)") else { throw .malformedReply("expected a(sss)") }
        while try enter("r", "sss") {
            let change = UnitFileChange(type: try readString(), file: try readString(), destination: try readString())
            try exit()
            changes.append(change)
        }
        try exit()
        return changes
    }

    /// Reads `a(ssssssouso)`, the reply of ListUnits/ListUnitsByNames.
    func readUnitStatuses() throws(SystemdBusError) -> [UnitStatus] {
        var statuses: [UnitStatus] = []
        guard try enter("a", "(ssssssouso)") else { throw .malformedReply("expected a(ssssssouso)") }
        while try enter("r", "ssssssouso") {
            let name = try readString()
            let description = try readString()
            let load = try readString()
            let active = try readString()
            let sub = try readString()
            let following = try readString()
            let path = try readObjectPath()
            let jobID = try readUInt32()
            let jobType = try readString()
            let jobPath = try readObjectPath()
            try exit()
            statuses.append(UnitStatus(
                name: name, description: description,
                state: UnitState(load: LoadState(rawValue: load), active: ActiveState(rawValue: active), sub: sub),
                following: following, objectPath: path, jobID: jobID, jobType: jobType, jobPath: jobPath))
        }
        try exit()
        return statuses
    }

    /// Reads `a{sv}`, keeping the values of simple types and skipping the rest.
    func readPropertyMap() throws(SystemdBusError) -> [String: PropertyValue] {
        var properties: [String: PropertyValue] = [:]
        guard try enter("a", "{sv}") else { throw .malformedReply("expected a{sv}") }
        while try enter("e", "sv") {
            let key = try readString()
            properties[key] = try readVariant()
            try exit()
        }
        try exit()
        return properties
    }

    /// Reads one variant; values of types an agent does not need are skipped and reported as
    /// `.other(signature)`.
    func readVariant() throws(SystemdBusError) -> PropertyValue {
        guard let (type, contents) = try peek(), type == "v", let contents else {
            throw .malformedReply("expected a variant")
        }
        _ = try enter("v", contents)
        let value: PropertyValue
        switch contents {
        case "s": value = .string(try readString())
        case "o": value = .string(try readObjectPath())
        case "u": value = .uint32(try readUInt32())
        case "i": value = .int32(try readInt32())
        case "t": value = .uint64(try readUInt64())
        case "x": value = .int64(try readInt64())
        case "b": value = .bool(try readBool())
        default:
            try skip(contents)
            value = .other(signature: contents)
        }
        try exit()
        return value
    }
}

/// A property value as read from `a{sv}`.
enum PropertyValue: Sendable, Hashable {
    case string(String)
    case uint32(UInt32)
    case int32(Int32)
    case uint64(UInt64)
    case int64(Int64)
    case bool(Bool)
    case other(signature: String)

    var string: String? { if case .string(let value) = self { value } else { nil } }
    var uint32: UInt32? { if case .uint32(let value) = self { value } else { nil } }
    var int32: Int32? { if case .int32(let value) = self { value } else { nil } }
    var uint64: UInt64? { if case .uint64(let value) = self { value } else { nil } }
    var bool: Bool? { if case .bool(let value) = self { value } else { nil } }
}

/// Appends arguments to an outgoing sd_bus_message.
struct MessageWriter {
    let message: OpaquePointer

    private func check(_ rc: Int32, _ what: String) throws(SystemdBusError) {
        if rc < 0 { throw .system(operation: "sd_bus_message_append \(what)", errno: -rc) }
    }

    func append(_ string: String) throws(SystemdBusError) {
        try check(string.withCString { sd_bus_message_append_basic(message, CChar(UInt8(ascii: "s")), $0) }, "s")
    }

    func append(_ value: Bool) throws(SystemdBusError) {
        var raw: Int32 = value ? 1 : 0
        try check(sd_bus_message_append_basic(message, CChar(UInt8(ascii: "b")), &raw), "b")
    }

    func append(_ strings: [String]) throws(SystemdBusError) {
        try check(sd_bus_message_open_container(message, CChar(UInt8(ascii: "a")), "s"), "a")
        for string in strings { try append(string) }
        try check(sd_bus_message_close_container(message), "a")
    }
}
