/// Bounds the parser enforces before and while reading a unit file.
///
/// Both are in bytes. The defaults accept everything systemd accepts line by line: systemd's
/// `LONG_LINE_MAX` is 1 MiB for a physical line and for a line joined from continuations.
/// systemd has no limit on a whole file; Flotilla does, because every unit file is replicated
/// to every machine and kept in the log, so one file may not be larger than one line can be.
/// (fleet, through go-systemd, refused lines of 2048 bytes or more; Flotilla follows systemd.)
public struct UnitFileLimits: Hashable, Sendable {
    /// The largest input accepted, in bytes.
    public let unitFileSizeMax: Int
    /// The longest physical or joined logical line accepted, in bytes, line ending excluded.
    public let lineLengthMax: Int

    /// The limits used unless a caller asks otherwise.
    public static let standard = UnitFileLimits(
        unitFileSizeMax: UnitFile.unitFileSizeMax, lineLengthMax: UnitFile.lineLengthMax)

    /// Tighter limits, e.g. for an API that only wants small units. Limits are configuration,
    /// so a nonsensical pair is a programmer error and stops the process.
    public init(unitFileSizeMax: Int, lineLengthMax: Int) {
        precondition(unitFileSizeMax > 0, "unitFileSizeMax must be positive, got \(unitFileSizeMax)")
        precondition(lineLengthMax > 0, "lineLengthMax must be positive, got \(lineLengthMax)")
        precondition(
            lineLengthMax <= unitFileSizeMax,
            "lineLengthMax (\(lineLengthMax)) must not exceed unitFileSizeMax (\(unitFileSizeMax))")
        self.unitFileSizeMax = unitFileSizeMax
        self.lineLengthMax = lineLengthMax
    }
}
