/// The systemd specifiers fleet expanded in `[X-Fleet]` values (fleet's `unitPrintf`), so one
/// template can say `MachineOf=%p.socket` and mean a different unit for each instance.
public enum FleetSpecifiers {
    /// Expands, in one left-to-right pass:
    ///
    ///     %n  the full unit name            foo@bar.service
    ///     %N  the name without its suffix   foo@bar
    ///     %p  the prefix                    foo
    ///     %i  the instance (empty if none)  bar
    ///     %%  a single %
    ///
    /// Any other `%x`, and a `%` at the end, are kept as written: fleet left them alone and
    /// never handed these values to systemd. fleet also had no `%%`; it replaced each
    /// specifier across the whole string in turn, so `%%n` became `%` followed by the name.
    /// Here `%%n` is `%n`, as in systemd.
    ///
    /// The result can be longer than the input by at most `UnitName.lengthMax` bytes per two
    /// input bytes; callers bound their input.
    public static func expand(_ value: String, for unitName: UnitName) -> String {
        var output = String.UnicodeScalarView()
        var scalars = value.unicodeScalars.makeIterator()
        while let scalar = scalars.next() {
            guard scalar == "%" else {
                output.append(scalar)
                continue
            }
            guard let specifier = scalars.next() else {
                output.append(scalar)
                break
            }
            switch specifier {
            case "n": output.append(contentsOf: unitName.rawValue.unicodeScalars)
            case "N": output.append(contentsOf: unitName.nameWithoutSuffix.unicodeScalars)
            case "p": output.append(contentsOf: unitName.prefix.unicodeScalars)
            case "i": output.append(contentsOf: (unitName.instance ?? "").unicodeScalars)
            case "%": output.append("%")
            default:
                output.append(scalar)
                output.append(specifier)
            }
        }
        return String(output)
    }
}
