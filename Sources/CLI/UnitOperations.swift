import ArgumentParser
import Client
import FleetAPI
import Foundation
import UnitFile

/// The steps fleetctl's unit commands share (its lazyCreateUnits, setTargetStateOfUnits and
/// waitForUnitStates), against one client. Each step prints fleetctl's lines and throws
/// `ExitCode.failure` after saying what went wrong.
struct UnitOperations {
    /// fleetctl polled every 500 ms.
    static let pollInterval: Duration = .milliseconds(500)

    let client: FlotillaClient

    /// Expands and validates the arguments (`web@{1..3}`, `units/web.service`, `web`).
    static func resolve(_ arguments: [String]) throws -> [(argument: String, name: UnitName)] {
        guard !arguments.isEmpty else {
            err("No units given")
            throw ExitCode.failure
        }
        do {
            return try UnitArguments.resolve(arguments)
        } catch {
            throw fail("Error", error)
        }
    }

    /// `load` and `start`: submit what is missing, set the target state, wait as asked.
    func submitAndSet(_ arguments: [String], replace: Bool, _ target: FleetUnitTargetState, action: String, verb: String,
                      attempts: Int?) async throws {
        let resolved = try Self.resolve(arguments)
        try await ensureExist(resolved, replace: replace)
        let triggered = try await setTargetState(resolved.map(\.name.rawValue), target, action: action)
        try await wait(for: splitGlobal(triggered, verb: verb), target, verb: verb, attempts: attempts)
    }

    /// Makes sure every unit exists in the registry, in fleetctl's order: the registry's unit;
    /// else a local file at the argument's path; else, for an instance, its template from the
    /// registry, else a local template beside the argument. With `replace`, a registry unit whose
    /// local file differs is replaced by it (keeping its desired state).
    func ensureExist(_ units: [(argument: String, name: UnitName)], replace: Bool) async throws {
        for (argument, name) in units {
            let existing: FleetUnit?
            do { existing = try await client.unit(named: name.rawValue) } catch {
                throw fail("Error retrieving Unit(\(name)) from Registry", error)
            }
            if let existing {
                try await handleExisting(existing, argument: argument, replace: replace)
                continue
            }
            let file = try await findUnitFile(argument: argument, name: name)
            do {
                try await client.createUnit(named: name.rawValue, options: file.fleetOptions, desiredState: .inactive)
            } catch {
                throw fail("Error creating units", CLIError("failed creating unit \(name): \(error)"))
            }
            out("Unit \(name) inactive")
        }
    }

    private func handleExisting(_ existing: FleetUnit, argument: String, replace: Bool) async throws {
        let registryFile = try? UnitFile(fleetOptions: existing.options)
        guard FileManager.default.fileExists(atPath: argument) else { return }
        let local = try readUnitFile(atPath: argument, name: existing.name)
        guard local.hash != registryFile?.hash else { return }
        guard replace else {
            err("WARNING: Unit \(existing.name) in registry differs from local unit file \(argument)")
            return
        }
        do {
            try await client.createUnit(named: existing.name, options: local.fleetOptions,
                                        desiredState: existing.desiredState ?? .inactive)
        } catch {
            throw fail("Error replacing unit", CLIError("failed replacing unit \(existing.name): \(error)"))
        }
        out("Unit \(existing.name) replaced")
    }

    private func findUnitFile(argument: String, name: UnitName) async throws -> UnitFile {
        if FileManager.default.fileExists(atPath: argument) {
            return try readUnitFile(atPath: argument, name: name.rawValue)
        }
        guard name.form == .instance, let template = name.template else {
            err("Error creating units: unable to find Unit(\(name)) in Registry or on filesystem")
            throw ExitCode.failure
        }
        let registryTemplate: FleetUnit?
        do { registryTemplate = try await client.unit(named: template.rawValue) } catch {
            throw fail("Error retrieving template Unit(\(template)) from Registry", error)
        }
        if let registryTemplate {
            do {
                return try UnitFile(fleetOptions: registryTemplate.options)
            } catch {
                throw fail("Error creating units", CLIError("template Unit(\(template)) in Registry is not a unit file: \(error)"))
            }
        }
        let directory = (argument as NSString).deletingLastPathComponent
        let templatePath = directory.isEmpty ? template.rawValue : directory + "/" + template.rawValue
        guard FileManager.default.fileExists(atPath: templatePath) else {
            err("Error creating units: unable to find Unit(\(name)) or template Unit(\(template)) in Registry or on filesystem")
            throw ExitCode.failure
        }
        return try readUnitFile(atPath: templatePath, name: template.rawValue)
    }

    private func readUnitFile(atPath path: String, name: String) throws -> UnitFile {
        guard let data = FileManager.default.contents(atPath: path) else {
            err("Error creating units: failed getting Unit(\(name)) from file \(path): cannot read it")
            throw ExitCode.failure
        }
        do {
            return try UnitFile(parsing: Array(data))
        } catch {
            throw fail("Error creating units", CLIError("failed getting Unit(\(name)) from file \(path): \(error)"))
        }
    }

    /// Sets each unit's desired state; returns the units whose state changed (fleetctl skipped
    /// units already there). A unit missing from the registry fails the command.
    func setTargetState(_ names: [String], _ target: FleetUnitTargetState, action: String) async throws -> [FleetUnit] {
        var triggered: [FleetUnit] = []
        for name in names {
            let unit: FleetUnit?
            do { unit = try await client.unit(named: name) } catch {
                throw fail("Error \(action) units", CLIError("error retrieving unit \(name) from registry: \(error)"))
            }
            guard let unit else {
                err("Error \(action) units: unable to find unit \(name)")
                throw ExitCode.failure
            }
            if unit.desiredState == target { continue }
            do { try await client.setUnitTargetState(named: name, target) } catch {
                throw fail("Error \(action) units", error)
            }
            triggered.append(unit)
        }
        return triggered
    }

    /// Splits triggered units into global ones (printed as triggered: fleetctl never waited for
    /// them) and the ones to wait for.
    func splitGlobal(_ units: [FleetUnit], verb: String) -> [String] {
        var waiting: [String] = []
        for unit in units {
            if let file = try? UnitFile(fleetOptions: unit.options), isGlobalUnit(file) {
                out("Triggered global unit \(unit.name) \(verb)")
            } else {
                waiting.append(unit.name)
            }
        }
        return waiting
    }

    /// Polls /fleet/v1/state until every unit reaches `target`, printing fleetctl's line for each
    /// as it does. `attempts` nil: do not wait (print "Triggered unit ..."); 0: wait forever.
    func wait(for names: [String], _ target: FleetUnitTargetState, verb: String, attempts: Int?) async throws {
        guard let attempts else {
            for name in names { out("Triggered unit \(name) \(verb)") }
            return
        }
        var pending = names
        var ips: [String: String]?
        var attempt = 0
        var eventIndex: UInt64 = 0
        while !pending.isEmpty {
            if attempts > 0 && attempt >= attempts {
                for name in pending {
                    err("Error waiting for units: timed out waiting for unit \(name) to report state \(target.rawValue)")
                }
                throw ExitCode.failure
            }
            if attempt > 0 {
                // Wait for the cluster's next event (a state change wakes it at once) rather
                // than a fixed poll: a unit that is active 30 ms after the request is reported
                // then, not at the next 500 ms tick. A peer without the watch stream falls back
                // to polling.
                if let page = try? await client.events(afterIndex: eventIndex, waitMilliseconds: Int(Self.pollInterval.components.seconds * 1_000 + Self.pollInterval.components.attoseconds / 1_000_000_000_000_000)) {
                    eventIndex = page.lastIndex
                } else {
                    try await Task.sleep(for: Self.pollInterval)
                }
            }
            attempt += 1
            let states: [FleetUnitState]
            do { states = try await client.unitStates() } catch {
                err("Error retrieving unit states (will retry): \(error)")
                continue
            }
            var stillPending: [String] = []
            for name in pending {
                let own = states.filter { $0.name == name }
                guard TargetStateCheck.isReached(target, states: own) else {
                    stillPending.append(name)
                    continue
                }
                let machineID = TargetStateCheck.reachingState(target, states: own)?.machineID
                if machineID != nil && ips == nil { ips = await machineIPs(client) }
                out(TargetStateCheck.reachedLine(unit: name, target: target, machineID: machineID, ip: machineID.flatMap { ips?[$0] }))
            }
            pending = stillPending
        }
    }

    /// The registry's units among `names`; the missing ones are reported, and fail the command
    /// unless `missingIsFine`.
    func findExisting(_ names: [String], missingIsFine: Bool) async throws -> [FleetUnit] {
        let all: [FleetUnit]
        do { all = try await client.listUnits() } catch {
            throw fail("Error retrieving list of units from repository", error)
        }
        let byName = Dictionary(all.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        var found: [FleetUnit] = []
        var missing = false
        for name in names {
            if let unit = byName[name] {
                found.append(unit)
            } else if !missingIsFine {
                err("Unit \(name) not found in registry")
                missing = true
            }
        }
        if missing { throw ExitCode.failure }
        return found
    }
}

/// `--no-block` and `--block-attempts`, as fleetctl's start, stop and load took them.
struct BlockOptions: ParsableArguments {
    @Flag(name: .customLong("no-block"), help: "Do not wait until the units have reached their state before exiting. Always the case for global units.")
    var noBlock = false

    @Option(name: .customLong("block-attempts"), help: "Wait until the units have reached their state, performing up to N attempts 500 ms apart before giving up. 0 means no limit.")
    var blockAttempts = 0

    var attempts: Int? { CLI.blockAttempts(noBlock: noBlock, blockAttempts: blockAttempts) }

    func validate() throws {
        guard blockAttempts >= 0 else { throw ValidationError("--block-attempts must not be negative") }
    }
}
