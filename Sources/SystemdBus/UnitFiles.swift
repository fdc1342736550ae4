import Foundation

extension SystemdManager {
    /// The path this process writes `unit`'s file to.
    public nonisolated func unitFileWritePath(_ unit: UnitName) -> String {
        configuration.unitFileDirectory.writePath + "/" + unit.rawValue
    }

    /// Writes `unit`'s file into the unit-file directory, atomically (temporary file, rename),
    /// and says whether its content changed. A `.changed` file needs `reload()` before systemd
    /// uses it; `.unchanged` needs nothing (fleet reloaded on hash changes for the same reason).
    /// Runs on the caller's executor: file IO never blocks the bus thread.
    public nonisolated func writeUnitFile(_ unit: UnitName, contents: String) throws -> UnitFileWrite {
        let directory = configuration.unitFileDirectory.writePath
        let path = unitFileWritePath(unit)
        let data = Data(contents.utf8)
        let manager = FileManager.default
        let existing = manager.contents(atPath: path)
        if existing == data { return .unchanged }
        do {
            try manager.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let temporary = directory + "/.\(unit.rawValue).\(getpid()).tmp"
            try data.write(to: URL(fileURLWithPath: temporary))
            if rename(temporary, path) != 0 {
                let code = errno
                unlink(temporary)
                throw SystemdBusError.unitFileIO(path: path, errno: code)
            }
        } catch let error as SystemdBusError {
            throw error
        } catch {
            throw SystemdBusError.unitFileIO(path: path, errno: (error as NSError).code == 0 ? EIO : Int32(EIO))
        }
        return existing == nil ? .created : .changed
    }

    /// Removes `unit`'s file; true if there was one. Disable and stop the unit first, and
    /// `reload()` after.
    @discardableResult
    public nonisolated func removeUnitFile(_ unit: UnitName) throws -> Bool {
        let path = unitFileWritePath(unit)
        if unlink(path) == 0 { return true }
        if errno == ENOENT { return false }
        throw SystemdBusError.unitFileIO(path: path, errno: errno)
    }
}
