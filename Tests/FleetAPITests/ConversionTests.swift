import TestSupport
import FleetAPI
import Foundation
import Testing
import UnitFile

@Suite(.onBackgroundThreads) struct ConversionTests {
    @Test func optionsRoundTripThroughAUnitFileKeepingOrderAndHash() throws {
        let text = "[Unit]\nDescription=web\nAfter=docker.service\n\n[Service]\nExecStart=/usr/bin/docker run --rm busybox httpd -f\nRestart=always\n\n[X-Fleet]\nConflicts=web@*.service\n"
        let file = try UnitFile(parsing: text)
        let options = file.fleetOptions
        #expect(options.map(\.name) == ["Description", "After", "ExecStart", "Restart", "Conflicts"])
        #expect(options.map(\.section) == ["Unit", "Unit", "Service", "Service", "X-Fleet"])
        let rebuilt = try UnitFile(fleetOptions: options)
        #expect(rebuilt == file)
        #expect(rebuilt.hash == file.hash)
    }

    @Test func emptyOptionsAreRefused() {
        #expect(throws: FleetOptionsConversionError.noOptions) { try UnitFile(fleetOptions: []) }
    }

    @Test func namesThatWouldInjectLinesAreRefused() {
        let injectedSection = [FleetUnitOption(section: "Service]\n[Unit", name: "ExecStart", value: "/bin/true")]
        #expect(throws: FleetOptionsConversionError.invalidSection("Service]\n[Unit")) {
            try UnitFile(fleetOptions: injectedSection)
        }
        let injectedName = [FleetUnitOption(section: "Service", name: "ExecStart=/bin/true\nUser", value: "root")]
        #expect(throws: FleetOptionsConversionError.invalidOption(section: "Service", name: "ExecStart=/bin/true\nUser")) {
            try UnitFile(fleetOptions: injectedName)
        }
    }

    @Test func valuesThatWouldInjectLinesAreRefused() throws {
        func convert(_ value: String) throws(FleetOptionsConversionError) -> UnitFile {
            try UnitFile(fleetOptions: [FleetUnitOption(section: "Service", name: "ExecStart", value: value)])
        }
        func reason(_ value: String) -> String? {
            do { _ = try convert(value); return nil } catch {
                guard case .invalidValue(let section, let name, let reason) = error, section == "Service", name == "ExecStart" else {
                    return "unexpected \(error)"
                }
                return reason
            }
        }
        #expect(reason("/bin/true\nUser=root")?.contains("line break") == true)
        #expect(reason("/bin/true\n[Install]\nWantedBy=multi-user.target")?.contains("line break") == true)
        #expect(reason("/bin/true\\\\\nUser=root")?.contains("line break") == true, "an even run of backslashes escapes itself, not the break")
        #expect(reason("/bin/true\r")?.contains("carriage return") == true)
        #expect(reason("/bin/\u{0}true")?.contains("NUL") == true)
        #expect(reason("/bin/true \\")?.contains("backslash") == true)
        // A continuation as go-systemd writes one is a single value, and reads back as one.
        let continued = try convert("/bin/sh -c \\\n  'sleep 1'")
        #expect(continued.options.filter { $0.section == "Service" }.count == 1)
        #expect(reason("/bin/echo a\\\\") == nil, "two backslashes at the end are one literal backslash")
    }

    @Test func entitiesEncodeWithFleetsFieldNames() throws {
        let unit = FleetUnit(name: "a.service", options: [FleetUnitOption(section: "Service", name: "ExecStart", value: "/bin/true")],
                             desiredState: .launched, currentState: .loaded, machineID: "m1")
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let json = String(decoding: try encoder.encode(unit), as: UTF8.self)
        #expect(json == #"{"currentState":"loaded","desiredState":"launched","machineID":"m1","name":"a.service","options":[{"name":"ExecStart","section":"Service","value":"\/bin\/true"}]}"#)
        let error = String(decoding: try encoder.encode(FleetErrorBody(code: 404, message: "unit does not exist")), as: UTF8.self)
        #expect(error == #"{"error":{"code":404,"message":"unit does not exist"}}"#)
    }
}
