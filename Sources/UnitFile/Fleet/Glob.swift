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
    /// so a longer one could only add stars. With `nameLengthMax` it bounds a match, which costs
    /// pattern tokens times name scalars steps, to 256 x 255 = 65,280 (tens of microseconds).
    public static let patternLengthMax = 256
    /// Names longer than this, in bytes, never match: a unit name's limit (`UnitName.lengthMax`).
    public static let nameLengthMax = UnitName.lengthMax

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
    ///
    /// A set of positions, one bit per prefix length of the name (a name has at most 255
    /// scalars, so 256 bits), is carried through the tokens: a single-character token shifts the
    /// set by one and keeps the positions whose scalar it accepts, `*` adds every later position
    /// (shift-and, as in bitap). Each token costs a few word operations, so a match is linear in
    /// the pattern; names with a '/' (never a unit name) take the table walk below.
    public func matches(_ name: String) -> Bool {
        guard name.utf8.count <= Self.nameLengthMax else { return false }
        let scalars = Array(name.unicodeScalars)
        guard scalars.count < PositionSet.capacity, !scalars.contains("/") else { return matchesByTable(scalars) }
        // For each ASCII scalar, the positions j + 1 such that scalars[j] is it; the rest by search.
        var byASCII = [PositionSet](repeating: PositionSet(), count: 128)
        var others: [UInt32: PositionSet] = [:]
        for (index, scalar) in scalars.enumerated() {
            if scalar.value < 128 { byASCII[Int(scalar.value)].insert(index + 1) } else { others[scalar.value, default: PositionSet()].insert(index + 1) }
        }
        let prefixes = PositionSet(through: scalars.count)
        let every = prefixes.removing(0)
        var matched = PositionSet()
        matched.insert(0)
        for token in tokens {
            switch token {
            case .anySequence:
                matched = matched.fillingUpward(within: prefixes)
            case .anyCharacter:
                matched = matched.shiftedUp().intersection(every)
            case .literal(let expected):
                let positions = expected.value < 128 ? byASCII[Int(expected.value)] : others[expected.value] ?? PositionSet()
                matched = matched.shiftedUp().intersection(positions)
            case .characterClass(let negated, let ranges):
                var accepted = PositionSet()
                for value in 0..<128 where !byASCII[value].isEmpty && ranges.contains(where: { $0.contains(UInt32(value)) }) != negated {
                    accepted = accepted.union(byASCII[value])
                }
                for (value, positions) in others where ranges.contains(where: { $0.contains(value) }) != negated {
                    accepted = accepted.union(positions)
                }
                matched = matched.shiftedUp().intersection(accepted)
            }
            if matched.isEmpty { return false }
        }
        return matched.contains(scalars.count)
    }

    /// The same answer by a table of pattern tokens times name positions (the reference the
    /// shift-and walk is tested against, and the path for names with a '/', which `*` may not
    /// cross).
    func matchesByTable(_ scalars: [Unicode.Scalar]) -> Bool {
        // matched[j]: the tokens seen so far match the first j scalars of the name. Two rows,
        // reused: one allocation per match, not one per token.
        var matched = [Bool](repeating: false, count: scalars.count + 1)
        var next = matched
        matched[0] = true
        for token in tokens {
            switch token {
            case .anySequence:
                next[0] = matched[0]
                for index in scalars.indices {
                    next[index + 1] = matched[index + 1] || (next[index] && scalars[index] != "/")
                }
            case .literal, .anyCharacter, .characterClass:
                next[0] = false
                var any = false
                for index in scalars.indices {
                    let step = matched[index] && Self.token(token, matches: scalars[index])
                    next[index + 1] = step
                    any = any || step
                }
                // Nothing matches past this token: no later token can bring a match back.
                if !any { return false }
            }
            swap(&matched, &next)
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

/// A set of positions 0..<256 in four words, for `Glob.matches`.
struct PositionSet: Sendable {
    static let capacity = 256
    private var words: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)

    init() {}

    /// 0 through `last`.
    init(through last: Int) {
        for position in 0...last { insert(position) }
    }

    var isEmpty: Bool { (words.0 | words.1 | words.2 | words.3) == 0 }

    mutating func insert(_ position: Int) {
        let bit = UInt64(1) << UInt64(position & 63)
        switch position >> 6 {
        case 0: words.0 |= bit
        case 1: words.1 |= bit
        case 2: words.2 |= bit
        default: words.3 |= bit
        }
    }

    func removing(_ position: Int) -> PositionSet {
        var copy = self
        let mask = ~(UInt64(1) << UInt64(position & 63))
        switch position >> 6 {
        case 0: copy.words.0 &= mask
        case 1: copy.words.1 &= mask
        case 2: copy.words.2 &= mask
        default: copy.words.3 &= mask
        }
        return copy
    }

    func contains(_ position: Int) -> Bool {
        let word: UInt64
        switch position >> 6 {
        case 0: word = words.0
        case 1: word = words.1
        case 2: word = words.2
        default: word = words.3
        }
        return word & (UInt64(1) << UInt64(position & 63)) != 0
    }

    /// Every position moved up by one (the top one falls off).
    func shiftedUp() -> PositionSet {
        var result = PositionSet()
        result.words = (words.0 << 1, (words.1 << 1) | (words.0 >> 63), (words.2 << 1) | (words.1 >> 63), (words.3 << 1) | (words.2 >> 63))
        return result
    }

    func intersection(_ other: PositionSet) -> PositionSet {
        var result = PositionSet()
        result.words = (words.0 & other.words.0, words.1 & other.words.1, words.2 & other.words.2, words.3 & other.words.3)
        return result
    }

    func union(_ other: PositionSet) -> PositionSet {
        var result = PositionSet()
        result.words = (words.0 | other.words.0, words.1 | other.words.1, words.2 | other.words.2, words.3 | other.words.3)
        return result
    }

    /// Every position of `within` from the lowest one in this set up; empty stays empty.
    func fillingUpward(within: PositionSet) -> PositionSet {
        let all = [words.0, words.1, words.2, words.3]
        guard let first = all.firstIndex(where: { $0 != 0 }) else { return self }
        let low = all[first].trailingZeroBitCount
        func mask(_ index: Int) -> UInt64 { index < first ? 0 : index == first ? ~0 << UInt64(low) : ~0 }
        var result = PositionSet()
        result.words = (mask(0), mask(1), mask(2), mask(3))
        return result.intersection(within)
    }
}
