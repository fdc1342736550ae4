import Foundation
import Testing
import TestSupport

@testable import UnitFile

/// The unit files this machine's systemd ships: real-world input nobody wrote for our tests.
enum SystemUnitFiles {
    static let directories = ["/lib/systemd/system", "/usr/lib/systemd/system"]

    /// Fewer than this means the walk went wrong, not that the machine has few units: a
    /// Debian base system ships about two hundred.
    static let countMin = 50

    /// Regular files with a unit type suffix, found recursively, each real file once (on
    /// merged-/usr systems /lib is /usr/lib). Symlinks are skipped: those to /dev/null mask a
    /// unit, the others point at a file found on its own.
    static func paths() -> [String] {
        var realPaths = Set<String>()
        let manager = FileManager.default
        let suffixes = UnitType.allCases.map(\.suffix)
        for directory in directories {
            guard let walker = manager.enumerator(atPath: directory) else { continue }
            while let relative = walker.nextObject() as? String {
                guard suffixes.contains(where: { relative.hasSuffix($0) }) else { continue }
                let path = directory + "/" + relative
                guard let attributes = try? manager.attributesOfItem(atPath: path),
                    attributes[.type] as? FileAttributeType == .typeRegular
                else { continue }
                realPaths.insert(URL(fileURLWithPath: path).resolvingSymlinksInPath().path)
            }
        }
        return realPaths.sorted()
    }
}

@Suite(.onBackgroundThreads) struct SystemUnitFilesTests {
    @Test func everySystemUnitFileParsesAndRoundTrips() throws {
        let paths = SystemUnitFiles.paths()
        #expect(paths.count >= SystemUnitFiles.countMin, "found only \(paths.count) unit files")
        var failures: [String] = []
        for path in paths {
            guard let data = FileManager.default.contents(atPath: path) else {
                failures.append("\(path): unreadable")
                continue
            }
            do {
                let file = try UnitFile(parsing: [UInt8](data))
                let reparsed = try UnitFile(parsing: file.serializedBytes())
                if reparsed != file { failures.append("\(path): round trip changed the file") }
                if reparsed.hash != file.hash { failures.append("\(path): round trip changed the hash") }
            } catch {
                failures.append("\(path): \(error)")
            }
        }
        #expect(failures.isEmpty, "\(failures.joined(separator: "\n"))")
    }

    /// An independent check of SHA-1 and of the hash input on real files: the system's
    /// sha1sum, run once over all canonical forms, must agree with `UnitFile.hash`.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/sha1sum")))
    func systemUnitHashesAgreeWithSha1sum() async throws {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("unitfile-hash-\(ProcessInfo.processInfo.processIdentifier)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }

        var expected: [String: String] = [:]
        for (index, path) in SystemUnitFiles.paths().enumerated() {
            guard let data = FileManager.default.contents(atPath: path),
                let file = try? UnitFile(parsing: [UInt8](data))
            else { continue }
            let canonicalPath = directory.appendingPathComponent("\(index).canonical").path
            try Data(file.serializedBytes()).write(to: URL(fileURLWithPath: canonicalPath))
            expected[canonicalPath] = file.hash.hex
        }
        #expect(expected.count >= SystemUnitFiles.countMin)

        let result = try await ChildProcess.runOnOwnThread(["/usr/bin/sha1sum"] + expected.keys.sorted(), timeoutSeconds: 120)
        #expect(result.status == 0, "\(result.standardError)")

        var checked = 0
        for line in result.standardOutput.split(separator: "\n") {
            let fields = line.split(separator: " ", maxSplits: 1)
            guard fields.count == 2 else { continue }
            let path = fields[1].trimmingCharacters(in: .whitespaces)
            #expect(expected[path] == String(fields[0]), "\(path)")
            checked += 1
        }
        #expect(checked == expected.count)
    }
}
