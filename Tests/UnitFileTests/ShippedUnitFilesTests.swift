import TestSupport
import Foundation
import Testing

import UnitFile

/// The units this repository ships (Units/): what a new user runs first must be a unit Flotilla
/// itself accepts, with a valid name and valid [X-Fleet] options.
@Suite(.onBackgroundThreads) struct ShippedUnitFilesTests {
    static var unitsDirectory: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Units")
    }

    @Test func everyShippedUnitParsesWithAValidNameAndFleetOptions() throws {
        let root = Self.unitsDirectory.path
        let walker = try #require(FileManager.default.enumerator(atPath: root), "no Units/ at \(root)")
        var checked = 0
        while let relative = walker.nextObject() as? String {
            guard relative.hasSuffix(".service") || relative.hasSuffix(".socket") || relative.hasSuffix(".timer") else {
                continue
            }
            let text = try String(contentsOfFile: root + "/" + relative, encoding: .utf8)
            let file = try UnitFile(parsing: text)
            let name = try UnitName(URL(fileURLWithPath: relative).lastPathComponent)
            #expect(name.isSchedulableByFleet, "\(relative)")
            _ = try FleetOptions(unitFile: file, unitName: name)
            #expect(try UnitFile(parsing: file.serialized()) == file, "\(relative) does not round-trip")
            checked += 1
        }
        #expect(checked >= 1, "no unit files found under \(root)")
    }
}
