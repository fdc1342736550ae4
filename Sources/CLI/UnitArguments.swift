import UnitFile

/// Why a command-line argument cannot name units.
public enum UnitArgumentError: Error, Hashable, Sendable, CustomStringConvertible {
    case braceExpansionTooLarge(String, limit: Int)
    case invalidName(String, reason: String)

    public var description: String {
        switch self {
        case .braceExpansionTooLarge(let argument, let limit):
            return "\(argument) expands to more than \(limit) names"
        case .invalidName(let name, let reason):
            return "invalid unit name \(name.debugDescription): \(reason)"
        }
    }
}

public enum UnitArguments {
    /// The most names one argument may expand to.
    public static let expansionMax = 10_000

    /// Expands shell-style braces the shell did not (the argument was quoted, or came from a
    /// script): `web@{1..3}.service`, `{a,b}.service`, `x{01..10}`. fleetctl left this to the
    /// shell; a unit name can never hold a brace, so expanding one cannot change a valid name.
    /// A brace that does not form a list or range is kept as written (as bash does).
    public static func expandBraces(_ argument: String) throws(UnitArgumentError) -> [String] {
        var results: [String] = []
        try expand(Substring(argument), into: &results, original: argument)
        return results
    }

    private static func expand(_ text: Substring, into results: inout [String], original: String) throws(UnitArgumentError) {
        guard let (prefix, alternatives, suffix) = firstBraceGroup(in: text) else {
            results.append(String(text))
            return
        }
        for alternative in alternatives {
            try expand(Substring(prefix + alternative + suffix), into: &results, original: original)
            guard results.count <= expansionMax else { throw .braceExpansionTooLarge(original, limit: expansionMax) }
        }
    }

    /// The first `{...}` that is a comma list or a `a..b` range, split into what comes before,
    /// its alternatives and what comes after.
    private static func firstBraceGroup(in text: Substring) -> (String, [String], String)? {
        var searchStart = text.startIndex
        while let open = text[searchStart...].firstIndex(of: "{") {
            var depth = 0
            var close: Substring.Index?
            var commas: [Substring.Index] = []
            var index = open
            while index < text.endIndex {
                let character = text[index]
                if character == "{" { depth += 1 }
                if character == "}" {
                    depth -= 1
                    if depth == 0 { close = index; break }
                }
                if character == ",", depth == 1 { commas.append(index) }
                index = text.index(after: index)
            }
            guard let close else { return nil }
            let body = text[text.index(after: open)..<close]
            let prefix = String(text[..<open])
            let suffix = String(text[text.index(after: close)...])
            if !commas.isEmpty {
                var parts: [String] = []
                var start = body.startIndex
                for comma in commas {
                    parts.append(String(text[start..<comma]))
                    start = text.index(after: comma)
                }
                parts.append(String(text[start..<close]))
                return (prefix, parts, suffix)
            }
            if let range = rangeAlternatives(String(body)) { return (prefix, range, suffix) }
            searchStart = text.index(after: open)
        }
        return nil
    }

    /// `1..3`, `3..1`, `01..10` (zero-padded to the wider end, as bash does) or `a..e`.
    private static func rangeAlternatives(_ body: String) -> [String]? {
        let ends = body.components(separatedByDots: "..")
        guard ends.count == 2 else { return nil }
        if let low = Int(ends[0]), let high = Int(ends[1]) {
            guard abs(high - low) < expansionMax else { return nil }
            let width = (ends[0].hasPrefix("0") || ends[1].hasPrefix("0")) ? max(ends[0].count, ends[1].count) : 0
            let values = low <= high ? Array(low...high) : Array((high...low).reversed())
            return values.map { value in
                let digits = String(value)
                return digits.count < width ? String(repeating: "0", count: width - digits.count) + digits : digits
            }
        }
        if ends[0].count == 1, ends[1].count == 1, let low = ends[0].unicodeScalars.first, let high = ends[1].unicodeScalars.first,
           low.isASCII, high.isASCII, low.properties.isAlphabetic, high.properties.isAlphabetic {
            let values = low.value <= high.value ? Array(low.value...high.value) : Array((high.value...low.value).reversed())
            return values.compactMap { Unicode.Scalar($0).map { String(Character($0)) } }
        }
        return nil
    }

    /// fleetctl's name mangling: the last path component, with `.service` appended when it does
    /// not end in a unit type (`web` and `./units/web` both mean `web.service`).
    public static func unitName(forArgument argument: String) -> String {
        let base = argument.split(separator: "/", omittingEmptySubsequences: true).last.map(String.init) ?? argument
        return appendingDefaultType(base)
    }

    /// The argument with `.service` appended when its last component has no unit type: the
    /// path a local file is looked for at (fleetctl's maybeAppendDefaultUnitType).
    public static func appendingDefaultType(_ argument: String) -> String {
        if let dot = argument.lastIndex(of: "."), UnitType(rawValue: String(argument[argument.index(after: dot)...])) != nil {
            return argument
        }
        return argument + ".service"
    }

    /// Expands every argument's braces, then validates each resulting unit name.
    public static func resolve(_ arguments: [String]) throws(UnitArgumentError) -> [(argument: String, name: UnitName)] {
        var resolved: [(argument: String, name: UnitName)] = []
        for argument in arguments {
            for expanded in try expandBraces(argument) {
                let path = appendingDefaultType(expanded)
                let nameText = unitName(forArgument: path)
                do {
                    resolved.append((path, try UnitName(nameText)))
                } catch {
                    throw .invalidName(nameText, reason: error.description)
                }
            }
        }
        return resolved
    }
}

extension String {
    /// Splits on a separator string (Foundation-free `components(separatedBy:)`).
    func components(separatedByDots separator: String) -> [String] {
        var parts: [String] = []
        var rest = Substring(self)
        while let range = rest.firstRange(of: separator) {
            parts.append(String(rest[..<range.lowerBound]))
            rest = rest[range.upperBound...]
        }
        parts.append(String(rest))
        return parts
    }
}
