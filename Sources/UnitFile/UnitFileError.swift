/// Why a unit file was refused, either while parsing bytes or while building one in code.
///
/// Parsing errors carry the 1-based number of the physical line where the offending logical
/// line starts, so an operator can go straight to it. Where systemd merely logs a warning and
/// ignores a line (an assignment outside any section, a line without `=`, a key that is empty),
/// Flotilla refuses the whole file instead: a unit submitted to a cluster should not silently
/// lose a setting on every machine it lands on.
public enum UnitFileError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The input is longer than the limit in force; nothing was parsed.
    case fileTooLarge(sizeBytes: Int, limitBytes: Int)
    /// One physical line, or a logical line joined from continuation lines, exceeds the limit.
    case lineTooLong(line: Int, limitBytes: Int)
    /// A second UTF-8 byte order mark at the start of a line. systemd strips only the first
    /// one it meets; a later one would change meaning once the file is re-serialised.
    case unexpectedByteOrderMark(line: Int)
    /// The logical line is not valid UTF-8 (systemd refuses such lines too).
    case invalidUTF8(line: Int)
    /// A line starting with `[` does not end with `]`.
    case invalidSectionHeader(line: Int)
    /// A section name holds a control character, a quote or a backslash (systemd's
    /// `string_is_safe()` rule).
    case unsafeSectionName(line: Int, name: String)
    /// An assignment appears before the first section header.
    case assignmentOutsideSection(line: Int)
    /// A line inside a section is neither a header, a comment, nor `Key=Value`.
    case missingEquals(line: Int)
    /// A line of the form `=Value`.
    case missingKey(line: Int)

    // Errors from building a unit file in code rather than parsing one.

    /// A section name that could not be written as `[Name]` and read back identically.
    case invalidSectionName(String)
    /// An option name that could not be written as `Name=` and read back identically.
    case invalidOptionName(String)
    /// An option value that could not be written on one line and read back identically.
    case invalidOptionValue(name: String, value: String)

    /// The physical line the error refers to, when it refers to one.
    public var line: Int? {
        switch self {
        case .fileTooLarge, .invalidSectionName, .invalidOptionName, .invalidOptionValue:
            return nil
        case .lineTooLong(let line, _), .unexpectedByteOrderMark(let line), .invalidUTF8(let line),
            .invalidSectionHeader(let line), .unsafeSectionName(let line, _),
            .assignmentOutsideSection(let line), .missingEquals(let line), .missingKey(let line):
            return line
        }
    }

    public var description: String {
        switch self {
        case .fileTooLarge(let size, let limit):
            return "unit file is \(size) bytes, more than the limit of \(limit) bytes"
        case .lineTooLong(let line, let limit):
            return "line \(line): line is longer than the limit of \(limit) bytes"
        case .unexpectedByteOrderMark(let line):
            return "line \(line): a second UTF-8 byte order mark starts this line"
        case .invalidUTF8(let line):
            return "line \(line): not valid UTF-8"
        case .invalidSectionHeader(let line):
            return "line \(line): invalid section header: a line starting with '[' must end with ']'"
        case .unsafeSectionName(let line, let name):
            return "line \(line): bad characters in section name \(quoted(name))"
        case .assignmentOutsideSection(let line):
            return "line \(line): assignment outside of any section"
        case .missingEquals(let line):
            return "line \(line): missing '=' (expected Key=Value, a [Section] header or a comment)"
        case .missingKey(let line):
            return "line \(line): missing key name before '='"
        case .invalidSectionName(let name):
            return "invalid section name \(quoted(name))"
        case .invalidOptionName(let name):
            return "invalid option name \(quoted(name))"
        case .invalidOptionValue(let name, let value):
            return "invalid value \(quoted(value)) for option \(name): values are one line without surrounding whitespace"
        }
    }
}

/// Quotes text for an error message, escaping what would make the message ambiguous.
func quoted(_ text: String) -> String {
    var result = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": result += "\\\""
        case "\\": result += "\\\\"
        case "\n": result += "\\n"
        case "\r": result += "\\r"
        case "\t": result += "\\t"
        default:
            if scalar.value < 0x20 || scalar.value == 0x7F {
                result += "\\u{" + String(scalar.value, radix: 16) + "}"
            } else {
                result.unicodeScalars.append(scalar)
            }
        }
    }
    return result + "\""
}
