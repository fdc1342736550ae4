import UnitFile

/// Why a list of fleet options is not a unit file.
public enum FleetOptionsConversionError: Error, Hashable, Sendable, CustomStringConvertible {
    case noOptions
    case invalidSection(String)
    case invalidOption(section: String, name: String)
    case invalidValue(section: String, name: String, reason: String)
    case unitFile(String)

    public var description: String {
        switch self {
        case .noOptions: return "unit has no options"
        case .invalidSection(let name): return "invalid section name \(name.debugDescription)"
        case .invalidOption(let section, let name): return "invalid option \(name.debugDescription) in [\(section)]"
        case .invalidValue(let section, let name, let reason): return "invalid value of \(name) in [\(section)]: \(reason)"
        case .unitFile(let reason): return reason
        }
    }
}

extension UnitFile {
    /// Builds the unit file fleet's API describes as `options`, in order.
    ///
    /// The options are written out as unit-file text and parsed, rather than built value by
    /// value, so a value fleet's clients send with go-systemd's raw continuation lines reads
    /// exactly as it would from a file, and the unit hashes as fleet hashed it.
    public init(fleetOptions: [FleetUnitOption]) throws(FleetOptionsConversionError) {
        guard !fleetOptions.isEmpty else { throw .noOptions }
        var text = ""
        var currentSection: String?
        for option in fleetOptions {
            guard Self.isPlainSectionName(option.section) else { throw .invalidSection(option.section) }
            guard Self.isPlainOptionName(option.name) else {
                throw .invalidOption(section: option.section, name: option.name)
            }
            if let reason = Self.valueProblem(option.value) {
                throw .invalidValue(section: option.section, name: option.name, reason: reason)
            }
            if option.section != currentSection {
                text += "[\(option.section)]\n"
                currentSection = option.section
            }
            text += "\(option.name)=\(option.value)\n"
        }
        do {
            self = try UnitFile(parsing: text)
        } catch {
            throw .unitFile("\(error)")
        }
    }

    /// This unit file as fleet's API lists it: every option in canonical order, with the value
    /// as written (`rawValue`), which is what fleet stored and served.
    public var fleetOptions: [FleetUnitOption] {
        options.map { FleetUnitOption(section: $0.section, name: $0.option.name, value: $0.option.rawValue) }
    }

    // The section and option names are checked here, before the text is assembled, so that a
    // name carrying "]" or "=" or a line break cannot smuggle extra lines into the parsed file.
    private static func isPlainSectionName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.allSatisfy { byte in
            byte >= 0x20 && byte != 0x7F && byte != UInt8(ascii: "[") && byte != UInt8(ascii: "]")
                && byte != UInt8(ascii: "\"") && byte != UInt8(ascii: "\\")
        }
    }

    /// A value may span lines only as go-systemd writes them, each line break right after a
    /// backslash (a continuation, joined by the parser). Any other line break would start a new
    /// line of its own (an option or a section the list does not show), a NUL or carriage return
    /// is read differently by systemd, and a trailing backslash would swallow the next option.
    static func valueProblem(_ value: String) -> String? {
        var backslashRun = 0
        for byte in value.utf8 {
            switch byte {
            case 0: return "it contains a NUL byte"
            case UInt8(ascii: "\r"): return "it contains a carriage return"
            case UInt8(ascii: "\n") where backslashRun % 2 == 0:
                return "it contains a line break that is not a continuation (a backslash right before it)"
            default: break
            }
            backslashRun = byte == UInt8(ascii: "\\") ? backslashRun + 1 : 0
        }
        return backslashRun % 2 == 1 ? "it ends in a backslash, which would join the next option to it" : nil
    }

    private static func isPlainOptionName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.allSatisfy { byte in
            (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z")) || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
                || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: "-")
                || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".")
        }
    }
}
