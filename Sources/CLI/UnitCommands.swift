import ArgumentParser
import Client
import FleetAPI
import UnitFile

struct Submit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Upload one or more units to the cluster without starting them.")
    @OptionGroup var global: GlobalOptions
    @Flag(help: "Replace the unit in the cluster when its local file differs.") var replace = false
    @Argument(help: "Unit files or names (web.service, units/web@.service, 'web@{1..3}').") var units: [String] = []

    func run() async throws {
        let resolved = try UnitOperations.resolve(units)
        try await UnitOperations(client: try global.makeClient()).ensureExist(resolved, replace: replace)
    }
}

struct Load: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Schedule one or more units in the cluster, first submitting them if necessary.")
    @OptionGroup var global: GlobalOptions
    @OptionGroup var block: BlockOptions
    @Flag(help: "Replace the unit in the cluster when its local file differs.") var replace = false
    @Argument var units: [String] = []

    func run() async throws {
        try await UnitOperations(client: try global.makeClient())
            .submitAndSet(units, replace: replace, .loaded, action: "loading", verb: "load", attempts: block.attempts)
    }
}

struct Start: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Start one or more units in the cluster, first submitting and loading them if necessary.")
    @OptionGroup var global: GlobalOptions
    @OptionGroup var block: BlockOptions
    @Flag(help: "Replace the unit in the cluster when its local file differs.") var replace = false
    @Argument var units: [String] = []

    func run() async throws {
        try await UnitOperations(client: try global.makeClient())
            .submitAndSet(units, replace: replace, .launched, action: "starting", verb: "start", attempts: block.attempts)
    }
}

struct Stop: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Stop one or more units in the cluster (they stay loaded).")
    @OptionGroup var global: GlobalOptions
    @OptionGroup var block: BlockOptions
    @Argument var units: [String] = []

    func run() async throws {
        let resolved = try UnitOperations.resolve(units)
        let operations = UnitOperations(client: try global.makeClient())
        let found = try await operations.findExisting(resolved.map(\.name.rawValue), missingIsFine: false)
        var stopping: [String] = []
        for unit in found {
            let isGlobal = (try? UnitFile(fleetOptions: unit.options)).map(isGlobalUnit) ?? false
            if !isGlobal && unit.desiredState == .inactive {
                err("Unable to stop unit \(unit.name) in state inactive")
                throw ExitCode.failure
            }
            stopping.append(unit.name)
        }
        let triggered = try await operations.setTargetState(stopping, .loaded, action: "stopping")
        try await operations.wait(for: operations.splitGlobal(triggered, verb: "stop"), .loaded, verb: "stop", attempts: block.attempts)
    }
}

struct Unload: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Unschedule one or more units in the cluster.")
    @OptionGroup var global: GlobalOptions
    @OptionGroup var block: BlockOptions
    @Argument var units: [String] = []

    func run() async throws {
        let resolved = try UnitOperations.resolve(units)
        let operations = UnitOperations(client: try global.makeClient())
        let found = try await operations.findExisting(resolved.map(\.name.rawValue), missingIsFine: false)
        let triggered = try await operations.setTargetState(found.map(\.name), .inactive, action: "unloading")
        try await operations.wait(for: operations.splitGlobal(triggered, verb: "unload"), .inactive, verb: "unload", attempts: block.attempts)
    }
}

struct Destroy: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Destroy one or more units in the cluster (a unit already gone is not an error).")
    @OptionGroup var global: GlobalOptions
    @Argument var units: [String] = []

    func run() async throws {
        let resolved = try UnitOperations.resolve(units)
        let client = try global.makeClient()
        for (_, name) in resolved {
            do {
                if try await client.destroyUnit(named: name.rawValue) { out("Destroyed \(name)") }
            } catch {
                throw fail("Error destroying units", CLIError("failed destroying unit \(name): \(error)"))
            }
        }
    }
}

struct Restart: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Stop, then start one or more running units in the cluster.")
    @OptionGroup var global: GlobalOptions
    @OptionGroup var block: BlockOptions
    @Argument var units: [String] = []

    func run() async throws {
        let resolved = try UnitOperations.resolve(units)
        let operations = UnitOperations(client: try global.makeClient())
        let found = try await operations.findExisting(resolved.map(\.name.rawValue), missingIsFine: false)
        for unit in found where unit.desiredState != .launched {
            err("Unable to restart unit \(unit.name) in state \(unit.desiredState?.rawValue ?? "unknown"): it is not started")
            throw ExitCode.failure
        }
        let names = found.map(\.name)
        let stopped = try await operations.setTargetState(names, .loaded, action: "stopping")
        try await operations.wait(for: operations.splitGlobal(stopped, verb: "stop"), .loaded, verb: "stop", attempts: block.attempts)
        let started = try await operations.setTargetState(names, .launched, action: "starting")
        try await operations.wait(for: operations.splitGlobal(started, verb: "start"), .launched, verb: "start", attempts: block.attempts)
    }
}

struct Cat: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Output the contents of a submitted unit.")
    @OptionGroup var global: GlobalOptions
    @Argument var unit: String

    func run() async throws {
        let name = UnitArguments.unitName(forArgument: unit)
        let client = try global.makeClient()
        let found: FleetUnit?
        do { found = try await client.unit(named: name) } catch { throw fail("Error retrieving Unit \(name)", error) }
        guard let found else {
            err("Unit \(name) not found")
            throw ExitCode.failure
        }
        do {
            Console.current.write(try UnitFile(fleetOptions: found.options).serialized(), to: .output)
        } catch {
            throw fail("Unit \(name) is not a valid unit file", error)
        }
    }
}

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Output the status of one or more units, read on their machines.")
    @OptionGroup var global: GlobalOptions
    @Argument var units: [String] = []

    func run() async throws {
        let resolved = try UnitOperations.resolve(units)
        let client = try global.makeClient()
        var failed = false
        for (index, (_, name)) in resolved.enumerated() {
            do {
                let status = try await client.status(unit: name.rawValue)
                if index > 0 { out("") }
                Console.current.write(status.text.hasSuffix("\n") || status.text.isEmpty ? status.text : status.text + "\n", to: .output)
            } catch {
                err("Error retrieving status of unit \(name): \(error)")
                failed = true
            }
        }
        if failed { throw ExitCode.failure }
    }
}

struct Journal: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the journal of a unit in the cluster, read on its machine.")
    @OptionGroup var global: GlobalOptions
    @Option(help: "Number of recent log lines to return.") var lines = 10
    @Flag(name: [.customShort("f"), .long], help: "Continuously print new entries as they are appended to the journal.") var follow = false
    @Option(help: "Output mode, as journalctl's: \(JournalOutput.allCases.map(\.rawValue).joined(separator: ", ")).") var output = "short"
    @Argument var unit: String

    func validate() throws {
        guard lines >= 0 else { throw ValidationError("--lines must not be negative") }
        guard JournalOutput(rawValue: output) != nil else {
            throw ValidationError("--output \(output) is not supported; use one of \(JournalOutput.allCases.map(\.rawValue).joined(separator: ", "))")
        }
    }

    func run() async throws {
        let name = UnitArguments.unitName(forArgument: unit)
        let client = try global.makeClient()
        if follow {
            do {
                for try await line in client.followJournal(unit: name, lines: lines, output: JournalOutput(rawValue: output) ?? .short) { out(line) }
            } catch {
                throw fail("Error following the journal of unit \(name)", error)
            }
            return
        }
        do {
            for line in try await client.journal(unit: name, lines: lines, output: JournalOutput(rawValue: output) ?? .short).lines { out(line) }
        } catch {
            throw fail("Error retrieving the journal of unit \(name)", error)
        }
    }
}

struct Version: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the version and exit.")

    func run() throws {
        out("flotillactl version \(Flotillactl.version)")
    }
}
