@testable import CLI
import TestSupport
import Client
import FleetAPI
import Testing
import UnitFile

@Suite("Pure formatting and parsing", .onBackgroundThreads)
struct FormattingTests {
    static let machine = FlotillaMachine(id: "0123456789abcdef0123456789abcdef", primaryIP: "10.0.0.1",
                                         metadata: ["region": "eu", "disk": "ssd"], role: "voter", state: "alive",
                                         isDrained: false, unitCount: 2)

    @Test func tableAlignsColumnsWithTabsLikeFleetctl() {
        let table = renderTable(fields: ["machine", "ip"], rows: [["01234567...", "10.0.0.1"], ["a...", "10.0.0.22"]], noLegend: false)
        #expect(table == "MACHINE\t\tIP\n01234567...\t10.0.0.1\na...\t\t10.0.0.22\n")
    }

    @Test func noLegendDropsTheHeader() {
        let rows = [MachineFields.row(Self.machine, fields: ["machine", "ip", "metadata"], full: false)]
        #expect(renderTable(fields: ["machine", "ip", "metadata"], rows: rows, noLegend: true)
            == "01234567...\t10.0.0.1\tdisk=ssd,region=eu\n")
    }

    @Test func fullShowsWholeMachineIDs() {
        #expect(MachineFields.row(Self.machine, fields: ["machine"], full: true) == ["0123456789abcdef0123456789abcdef"])
        #expect(MachineFields.row(Self.machine, fields: ["machine"], full: false) == ["01234567..."])
        #expect(machineFullLegend("0123456789abcdef", ip: "10.0.0.1", full: false) == "01234567.../10.0.0.1")
        #expect(machineFullLegend("0123456789abcdef", ip: nil, full: false) == "01234567...")
    }

    @Test func metadataKeepsOperatorsAndSortsKeys() {
        #expect(formatMetadata(["b": ">=3", "a": "x"]) == "a=x,b>=3")
        #expect(formatMetadata([:]) == "-")
    }

    @Test func fieldsAreValidatedWithFleetctlsMessages() throws {
        #expect(throws: FieldsError.empty) { try parseFields("", valid: UnitStateFields.valid) }
        #expect(throws: FieldsError.invalidKey("bogus")) { try parseFields("unit,bogus", valid: UnitStateFields.valid) }
        #expect(throws: FieldsError.invalidKey("")) { try parseFields("unit,", valid: UnitStateFields.valid) }
        #expect(FieldsError.invalidKey("bogus").description == #"Invalid key in output format: "bogus""#)
        #expect(try parseFields("sub,unit", valid: UnitStateFields.valid) == ["sub", "unit"])
    }

    @Test func unitStateRowsShortenHashesUnlessFull() {
        let state = FleetUnitState(name: "web.service", hash: "abcdef0123456789", machineID: "0123456789abcdef",
                                   systemdLoadState: "loaded", systemdActiveState: "active", systemdSubState: "running")
        let fields = ["unit", "machine", "active", "sub", "hash", "load"]
        #expect(UnitStateFields.row(state, fields: fields, full: false, machineIPs: ["0123456789abcdef": "10.0.0.1"])
            == ["web.service", "01234567.../10.0.0.1", "active", "running", "abcdef0", "loaded"])
        #expect(UnitStateFields.row(state, fields: ["hash", "machine"], full: true, machineIPs: [:]) == ["abcdef0123456789", "0123456789abcdef"])
    }

    @Test func unitFileRowsFromOptions() throws {
        let file = try UnitFile(parsing: "[Unit]\nDescription=Web\n\n[Service]\nExecStart=/bin/true\n\n[X-Fleet]\nGlobal=true\n")
        let unit = FleetUnit(name: "web.service", options: file.fleetOptions, desiredState: .launched, currentState: .launched,
                             machineID: "0123456789abcdef")
        let row = UnitFileFields.row(unit, fields: ["unit", "hash", "dstate", "state", "target", "global", "desc"], full: false, machineIPs: [:])
        #expect(row == ["web.service", file.hash.short, "launched", "-", "global", "true", "Web"])
        // The options go over the wire and come back as the same file (same hash).
        #expect(try UnitFile(fleetOptions: file.fleetOptions).hash == file.hash)
    }

    @Test func bracesExpandAsABashUserExpects() throws {
        #expect(try UnitArguments.expandBraces("web@{1..3}.service") == ["web@1.service", "web@2.service", "web@3.service"])
        #expect(try UnitArguments.expandBraces("{a,b}-{1..2}") == ["a-1", "a-2", "b-1", "b-2"])
        #expect(try UnitArguments.expandBraces("x{08..10}") == ["x08", "x09", "x10"])
        #expect(try UnitArguments.expandBraces("x{3..1}") == ["x3", "x2", "x1"])
        #expect(try UnitArguments.expandBraces("plain.service") == ["plain.service"])
        #expect(try UnitArguments.expandBraces("odd{x}") == ["odd{x}"])
        #expect(throws: UnitArgumentError.self) { try UnitArguments.expandBraces("{1..100}{1..101}") }
    }

    @Test func argumentsBecomeUnitNamesAsInFleetctl() throws {
        #expect(UnitArguments.unitName(forArgument: "units/web@.service") == "web@.service")
        #expect(UnitArguments.unitName(forArgument: "web") == "web.service")
        #expect(UnitArguments.unitName(forArgument: "db.socket") == "db.socket")
        let resolved = try UnitArguments.resolve(["dir/web@{1..2}"])
        #expect(resolved.map(\.argument) == ["dir/web@1.service", "dir/web@2.service"])
        #expect(resolved.map(\.name.rawValue) == ["web@1.service", "web@2.service"])
        #expect(throws: UnitArgumentError.self) { try UnitArguments.resolve(["bad name"]) }
    }

    @Test func endpointComesFromFlagThenEnvironment() throws {
        #expect(try resolveEndpoint(flag: nil, environment: [:]) == .unix(path: "/var/run/flotilla.sock"))
        #expect(try resolveEndpoint(flag: nil, environment: ["FLEETCTL_ENDPOINT": "http://h:1"]) == .tcp(host: "h", port: 1))
        #expect(try resolveEndpoint(flag: nil, environment: ["FLEETCTL_ENDPOINT": "http://h:1", "FLOTILLACTL_ENDPOINT": "/s.sock"])
            == .unix(path: "/s.sock"))
        #expect(try resolveEndpoint(flag: "http://a:2,http://b:3", environment: ["FLOTILLACTL_ENDPOINT": "/s.sock"]) == .tcp(host: "a", port: 2))
        #expect(throws: ClientError.self) { try resolveEndpoint(flag: "ftp://x", environment: [:]) }
    }

    @Test func caFileComesFromFlagThenFlotillactlThenFleetctlEnvironment() {
        func tls(_ flag: String?, _ environment: [String: String], certificate: String? = nil, key: String? = nil) -> ClientTLS?? {
            try? resolveClientTLS(caFileFlag: flag, certificateFileFlag: certificate, keyFileFlag: key, environment: environment).get()
        }
        #expect(tls(nil, [:]) == .some(nil))
        #expect(tls(nil, ["FLEETCTL_CA_FILE": "/f.pem"]) == ClientTLS(caFilePath: "/f.pem"))
        #expect(tls(nil, ["FLEETCTL_CA_FILE": "/f.pem", "FLOTILLACTL_CA_FILE": "/o.pem"]) == ClientTLS(caFilePath: "/o.pem"))
        #expect(tls("/c.pem", ["FLOTILLACTL_CA_FILE": "/o.pem"]) == ClientTLS(caFilePath: "/c.pem"))
        // fleetctl's client certificate flags and variables; the two go together.
        #expect(tls("/c.pem", [:], certificate: "/me.pem", key: "/me-key.pem")
                == ClientTLS(caFilePath: "/c.pem", certificateFilePath: "/me.pem", keyFilePath: "/me-key.pem"))
        #expect(tls(nil, ["FLEETCTL_CERT_FILE": "/e.pem", "FLEETCTL_KEY_FILE": "/e-key.pem"])
                == ClientTLS(caFilePath: nil, certificateFilePath: "/e.pem", keyFilePath: "/e-key.pem"))
        let halfGiven = resolveClientTLS(caFileFlag: nil, certificateFileFlag: "/me.pem", keyFileFlag: nil, environment: [:])
        #expect(throws: CLIError.self, "a certificate without its key is an error") { try halfGiven.get() }
        #expect(Flotillactl.movingGlobalOptions(["--ca-file", "/c.pem", "--endpoint=https://h", "list-units"])
            == ["list-units", "--ca-file", "/c.pem", "--endpoint=https://h"])
    }

    @Test func globalOptionsBeforeTheCommandMoveAfterIt() {
        #expect(Flotillactl.movingGlobalOptions(["--endpoint", "/s", "--request-timeout=2", "list-units", "-l"])
            == ["list-units", "--endpoint", "/s", "--request-timeout=2", "-l"])
        #expect(Flotillactl.movingGlobalOptions(["list-units", "--endpoint", "/s"]) == ["list-units", "--endpoint", "/s"])
    }

    @Test func targetStatesAreJudgedFromSystemd() {
        func state(_ load: String, _ active: String) -> FleetUnitState {
            FleetUnitState(name: "a.service", hash: "", machineID: "m", systemdLoadState: load, systemdActiveState: active, systemdSubState: "")
        }
        #expect(TargetStateCheck.isReached(.launched, states: [state("loaded", "active")]))
        #expect(!TargetStateCheck.isReached(.launched, states: [state("loaded", "activating")]))
        #expect(TargetStateCheck.isReached(.loaded, states: [state("loaded", "inactive")]))
        #expect(!TargetStateCheck.isReached(.loaded, states: [state("loaded", "active")]))
        #expect(TargetStateCheck.isReached(.inactive, states: []))
        #expect(!TargetStateCheck.isReached(.inactive, states: [state("loaded", "inactive")]))
        #expect(blockAttempts(noBlock: true, blockAttempts: 5) == nil)
        #expect(blockAttempts(noBlock: false, blockAttempts: 0) == 0)
        #expect(TargetStateCheck.reachedLine(unit: "web.service", target: .launched, machineID: "0123456789abcdef", ip: "10.0.0.1")
            == "Unit web.service launched on 01234567.../10.0.0.1")
    }

    @Test func machinesResolveByUniquePrefix() throws {
        let ids = ["0123abcd", "0124ffff", "9999"]
        #expect(try resolveMachineID("0123...", among: ids).get() == "0123abcd")
        #expect(throws: CLIError.self) { try resolveMachineID("012", among: ids).get() }
        #expect(throws: CLIError.self) { try resolveMachineID("7", among: ids).get() }
    }
}
