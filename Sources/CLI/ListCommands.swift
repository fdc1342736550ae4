import ArgumentParser
import Client
import FleetAPI

struct ListMachines: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list-machines", abstract: "Enumerate the current hosts in the cluster.")

    @OptionGroup var global: GlobalOptions
    @Flag(name: [.customShort("l"), .long], help: "Do not ellipsize fields on output.") var full = false
    @Flag(name: .customLong("no-legend"), help: "Do not print a legend (column headers).") var noLegend = false
    @Option(help: "Columns to print for each machine. Valid fields are \"\(MachineFields.valid.joined(separator: ","))\".")
    var fields = MachineFields.defaultFields

    func run() async throws {
        let columns: [String]
        do { columns = try parseFields(fields, valid: MachineFields.valid) } catch { throw fail("Error", error) }
        let client = try global.makeClient()
        let machines: [FlotillaMachine]
        do {
            if columns.contains(where: MachineFields.flotillaOnly.contains) {
                machines = try await client.listMachinesDetailed().sorted { $0.id < $1.id }
            } else {
                machines = try await client.listMachines().sorted { $0.id < $1.id }.map(MachineFields.detailed)
            }
        } catch {
            throw fail("Error retrieving list of active machines", error)
        }
        let rows = machines.map { MachineFields.row($0, fields: columns, full: full) }
        Console.current.write(renderTable(fields: columns, rows: rows, noLegend: noLegend), to: .output)
        // fleetctl's table stays as it was on stdout; a raised alarm is said on stderr, where
        // an operator sees it and scripts reading the table do not trip on it.
        if let alarms = try? await client.clusterStatus().alarms {
            for alarm in alarms { err("ALARM \(alarm): the cluster refuses writes that add data until space is freed") }
        }
    }
}

struct ListUnits: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list-units", abstract: "List the current state of units in the cluster.")

    @OptionGroup var global: GlobalOptions
    @Flag(name: [.customShort("l"), .long], help: "Do not ellipsize fields on output.") var full = false
    @Flag(name: .customLong("no-legend"), help: "Do not print a legend (column headers).") var noLegend = false
    @Option(help: "Columns to print for each unit. Valid fields are \"\(UnitStateFields.valid.joined(separator: ","))\".")
    var fields = UnitStateFields.defaultFields

    func run() async throws {
        let columns: [String]
        do { columns = try parseFields(fields, valid: UnitStateFields.valid) } catch { throw fail("Error", error) }
        let client = try global.makeClient()
        let states: [FleetUnitState]
        do {
            states = try await client.unitStates()
        } catch {
            throw fail("Error retrieving list of units from repository", error)
        }
        let ips = columns.contains("machine") ? await machineIPs(client) : [:]
        let rows = states.sorted { ($0.name, $0.machineID) < ($1.name, $1.machineID) }
            .map { UnitStateFields.row($0, fields: columns, full: full, machineIPs: ips) }
        Console.current.write(renderTable(fields: columns, rows: rows, noLegend: noLegend), to: .output)
    }
}

struct ListUnitFiles: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list-unit-files", abstract: "List the units that exist in the cluster.")

    @OptionGroup var global: GlobalOptions
    @Flag(name: [.customShort("l"), .long], help: "Do not ellipsize fields on output.") var full = false
    @Flag(name: .customLong("no-legend"), help: "Do not print a legend (column headers).") var noLegend = false
    @Option(help: "Columns to print for each unit file. Valid fields are \"\(UnitFileFields.valid.joined(separator: ","))\".")
    var fields = UnitFileFields.defaultFields

    func run() async throws {
        let columns: [String]
        do { columns = try parseFields(fields, valid: UnitFileFields.valid) } catch { throw fail("Error", error) }
        if columns.contains("tmachine") { err("WARNING: The \"tmachine\" field is deprecated. Use \"target\" instead") }
        let client = try global.makeClient()
        let units: [FleetUnit]
        do {
            units = try await client.listUnits()
        } catch {
            throw fail("Error retrieving list of units from repository", error)
        }
        let ips = columns.contains("target") || columns.contains("tmachine") ? await machineIPs(client) : [:]
        let rows = units.sorted { $0.name < $1.name }.map { UnitFileFields.row($0, fields: columns, full: full, machineIPs: ips) }
        Console.current.write(renderTable(fields: columns, rows: rows, noLegend: noLegend), to: .output)
    }
}
