/// Splits an `[X-Fleet]` value into words: whitespace separates words, double quotes group
/// (and are removed), so `MachineMetadata="region=us east" disk=ssd` is two words.
///
/// fleet split only values that both started and ended with a quote (its
/// `parseMultivalueLine`); an unquoted `MachineMetadata=a=1 b=2` stayed one malformed pair that
/// fleet silently ignored, dropping the constraint. Splitting every value is what the user
/// evidently meant, and is the same for every value fleet did split. Runs of whitespace do not
/// produce empty words (fleet produced one per extra space).
enum ValueTokenizer {
    enum Failure: Error, Hashable {
        case unterminatedQuote
    }

    static func words(of value: String) throws(Failure) -> [String] {
        var words: [String] = []
        var current = String.UnicodeScalarView()
        var inQuotes = false
        var inWord = false
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"":
                inQuotes.toggle()
                inWord = true
            case " ", "\t":
                if inQuotes {
                    current.append(scalar)
                    continue
                }
                if inWord { words.append(String(current)) }
                current = String.UnicodeScalarView()
                inWord = false
            default:
                current.append(scalar)
                inWord = true
            }
        }
        guard !inQuotes else { throw .unterminatedQuote }
        if inWord { words.append(String(current)) }
        return words
    }
}
