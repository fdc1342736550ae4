/// A shell-style pattern with the syntax and meaning of Go's `path.Match`, which fleet used
/// for `Conflicts=` and `Replaces=`:
///
///     '*'          any sequence of characters other than '/'
///     '?'          any one character other than '/'
///     '[' ['^'] { c | '\' c | lo '-' hi } ']'
///                  one character in (or with '^', not in) the non-empty class
///     '\' c        the character c itself
///     c            the character c itself
///
/// Unlike Go, which reports a malformed pattern only when matching reaches it (and fleet then
/// ignored the error), the whole pattern is checked once, up front, so a bad `Conflicts=` is
/// refused when the unit is submitted rather than silently never matching.
public struct Glob: Hashable, Sendable, CustomStringConvertible {
    /// The longest pattern accepted, in bytes. Patterns match unit names of at most 255 bytes,
    /// so this is generous; it bounds the cost of a match.
    public static let patternLengthMax = 4096
    /// Names longer than this, in bytes, never match; it bounds the cost of a match, which is
    /// proportional to pattern length times name length. Unit names are far shorter.
    public static let nameLengthMax = 4096

    public let pattern: String
    private let tokens: [Token]

    private enum Token: Hashable, Sendable {
        case literal(Unicode.Scalar)
        case anyCharacter
        case anySequence
        case characterClass(negated: Bool, ranges: [ClosedRange<UInt32>])
    }

    public init(_ pattern: String) throws(GlobError) {
        let length = pattern.utf8.count
        guard length <= Self.patternLengthMax else {
            throw .tooLong(lengthBytes: length, limitBytes: Self.patternLengthMax)
        }
        self.pattern = pattern
        self.tokens = try Self.compile(Array(pattern.unicodeScalars))
    }

    /// Whether `pattern` matches all of `name`; a malformed pattern is an error, as in Go.
    public static func matches(pattern: String, name: String) throws(GlobError) -> Bool {
        try Glob(pattern).matches(name)
    }

    /// Whether the pattern matches all of `name`.
    public func matches(_ name: String) -> Bool {
        guard name.utf8.count <= Self.nameLengthMax else { return false }
        let scalars = Array(name.unicodeScalars)
        // matched[j]: the tokens seen so far match the first j scalars of the name.
        var matched = [Bool](repeating: false, count: scalars.count + 1)
        matched[0] = true
        for token in tokens {
            var next = [Bool](repeating: false, count: scalars.count + 1)
            switch token {
            case .anySequence:
                next[0] = matched[0]
                for index in scalars.indices {
                    next[index + 1] = matched[index + 1] || (next[index] && scalars[index] != "/")
                }
            case .literal, .anyCharacter, .characterClass:
                for index in scalars.indices where matched[index] {
                    next[index + 1] = Self.token(token, matches: scalars[index])
                }
            }
            matched = next
        }
        return matched[scalars.count]
    }

    public var description: String { pattern }

    private static func token(_ token: Token, matches scalar: Unicode.Scalar) -> Bool {
        switch token {
        case .literal(let expected):
            return scalar == expected
        case .anyCharacter:
            return scalar != "/"
        case .characterClass(let negated, let ranges):
            return ranges.contains { $0.contains(scalar.value) } != negated
        case .anySequence:
            return false
        }
    }

    private static func compile(_ scalars: [Unicode.Scalar]) throws(GlobError) -> [Token] {
        var tokens: [Token] = []
        var index = 0
        while index < scalars.count {
            let scalar = scalars[index]
            index += 1
            switch scalar {
            case "*":
                if tokens.last != .anySequence { tokens.append(.anySequence) }
            case "?":
                tokens.append(.anyCharacter)
            case "\\":
                guard index < scalars.count else { throw .danglingEscape }
                tokens.append(.literal(scalars[index]))
                index += 1
            case "[":
                tokens.append(try compileClass(scalars, from: &index))
            default:
                tokens.append(.literal(scalar))
            }
        }
        return tokens
    }

    /// Reads a class after its '[' up to and including its ']', with Go's rules: ']' closes
    /// only after at least one range, and '-' or ']' cannot start a range unescaped.
    private static func compileClass(_ scalars: [Unicode.Scalar], from index: inout Int)
        throws(GlobError) -> Token
    {
        var negated = false
        if index < scalars.count, scalars[index] == "^" {
            negated = true
            index += 1
        }
        var ranges: [ClosedRange<UInt32>] = []
        var rangeCount = 0
        while true {
            guard index < scalars.count else { throw .unterminatedClass }
            if scalars[index] == "]", rangeCount > 0 {
                index += 1
                return .characterClass(negated: negated, ranges: ranges)
            }
            let low = try classCharacter(scalars, at: &index)
            var high = low
            if index < scalars.count, scalars[index] == "-" {
                index += 1
                high = try classCharacter(scalars, at: &index)
            }
            rangeCount += 1
            // Go accepts a reversed range such as z-a as a range that matches nothing.
            if low.value <= high.value { ranges.append(low.value...high.value) }
        }
    }

    /// One possibly escaped class character (Go's `getEsc`).
    private static func classCharacter(_ scalars: [Unicode.Scalar], at index: inout Int)
        throws(GlobError) -> Unicode.Scalar
    {
        guard index < scalars.count else { throw .unterminatedClass }
        var scalar = scalars[index]
        if scalar == "-" || scalar == "]" { throw .misplacedClassCharacter(scalar) }
        if scalar == "\\" {
            index += 1
            guard index < scalars.count else { throw .danglingEscape }
            scalar = scalars[index]
        }
        index += 1
        guard index < scalars.count else { throw .unterminatedClass }
        return scalar
    }
}

/// Why a pattern is malformed (Go reports all of these as `ErrBadPattern`).
public enum GlobError: Error, Hashable, Sendable, CustomStringConvertible {
    case tooLong(lengthBytes: Int, limitBytes: Int)
    /// A '\' with nothing after it.
    case danglingEscape
    /// A '[' without its ']', or an empty class such as "[]".
    case unterminatedClass
    /// An unescaped '-' or ']' where a class needs a character.
    case misplacedClassCharacter(Unicode.Scalar)

    public var description: String {
        switch self {
        case .tooLong(let length, let limit):
            return "pattern is \(length) bytes, more than the limit of \(limit)"
        case .danglingEscape:
            return "pattern ends with a lone '\\'"
        case .unterminatedClass:
            return "pattern has a '[' class without its closing ']'"
        case .misplacedClassCharacter(let scalar):
            return "pattern has an unescaped '\(scalar)' where a class needs a character"
        }
    }
}
