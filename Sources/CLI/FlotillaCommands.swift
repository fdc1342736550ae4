import ArgumentParser
import Client
import FleetAPI
import Foundation

/// A machine given by its full ID or a unique prefix of it (as list-machines shows it, with or
/// without the trailing "...").
public func resolveMachineID(_ argument: String, among machineIDs: [String]) -> Result<String, CLIError> {
    let prefix = argument.hasSuffix("...") ? String(argument.dropLast(3)) : argument
    guard !prefix.isEmpty else { return .failure(CLIError("no machine given")) }
    if machineIDs.contains(prefix) { return .success(prefix) }
    let matches = machineIDs.filter { $0.hasPrefix(prefix) }.sorted()
    switch matches.count {
    case 1: return .success(matches[0])
    case 0: return .failure(CLIError("no machine matches \(argument.debugDescription)"))
    default: return .failure(CLIError("\(argument.debugDescription) matches \(matches.count) machines: \(matches.joined(separator: ", "))"))
    }
}

private func setDrained(_ argument: String, isDrained: Bool, global: GlobalOptions) async throws {
    let client = try global.makeClient()
    let machines: [FleetMachine]
    do { machines = try await client.listMachines() } catch { throw fail("Error retrieving list of active machines", error) }
    let machineID: String
    switch resolveMachineID(argument, among: machines.map(\.id)) {
    case .success(let id): machineID = id
    case .failure(let error): throw fail("Error", error)
    }
    do {
        try await client.setDrained(machineID: machineID, isDrained: isDrained)
    } catch {
        throw fail("Error \(isDrained ? "draining" : "undraining") machine \(machineID)", error)
    }
    out("Machine \(machineID) \(isDrained ? "drained" : "undrained")")
}

struct Drain: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Move a machine's units elsewhere and place no new ones on it (Flotilla).")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The machine's ID or a unique prefix of it.") var machine: String

    func run() async throws { try await setDrained(machine, isDrained: true, global: global) }
}

struct Undrain: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Let units be placed on a drained machine again (Flotilla).")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The machine's ID or a unique prefix of it.") var machine: String

    func run() async throws { try await setDrained(machine, isDrained: false, global: global) }
}

/// One event as a line: index, kind, subject and what it now is.
public func formatEvent(_ event: FlotillaEvent) -> String {
    let summary: String
    switch event.kind {
    case .unit:
        if let unit = event.unit {
            summary = "desired=\(unit.desiredState?.rawValue ?? "-") current=\(unit.currentState?.rawValue ?? "-") machine=\(unit.machineID ?? "-")"
        } else {
            summary = "destroyed"
        }
    case .state:
        if let state = event.state {
            summary = "\(state.systemdLoadState)/\(state.systemdActiveState)/\(state.systemdSubState) on \(state.machineID)"
        } else {
            summary = "gone"
        }
    case .machine:
        if let machine = event.machine {
            summary = "\(machine.state) \(machine.primaryIP.isEmpty ? "-" : machine.primaryIP)\(machine.isDrained ? " drained" : "")"
        } else {
            summary = "gone"
        }
    }
    return "\(event.index)\t\(event.kind.rawValue)\t\(event.subject)\t\(summary)"
}

struct Watch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the cluster's changes (units, states, machines) as they happen (Flotilla).")
    @OptionGroup var global: GlobalOptions
    @Option(name: .customLong("after-index"), help: "Print events after this index (0: all the peer still holds).") var afterIndex: UInt64 = 0
    @Option(help: "Stop after this many events (0: never).") var count = 0
    @Flag(help: "Print each event as one line of JSON.") var json = false
    @Option(name: .customLong("wait-ms"), help: "Milliseconds one long poll waits for an event.") var waitMilliseconds = 30_000

    func validate() throws {
        guard count >= 0 else { throw ValidationError("--count must not be negative") }
        guard (0...300_000).contains(waitMilliseconds) else { throw ValidationError("--wait-ms must be from 0 to 300000") }
    }

    func run() async throws {
        let client = try global.makeClient()
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var index = afterIndex
        var printed = 0
        while count == 0 || printed < count {
            let page: FlotillaEventPage
            do { page = try await client.events(afterIndex: index, waitMilliseconds: waitMilliseconds) } catch {
                throw fail("Error watching the cluster", error)
            }
            if page.isTruncated {
                err("WARNING: events after \(index) were dropped from the peer's history; re-list, then watch from \(page.lastIndex)")
            }
            for event in page.events where count == 0 || printed < count {
                if json, let data = try? encoder.encode(event) {
                    out(String(decoding: data, as: UTF8.self))
                } else {
                    out(formatEvent(event))
                }
                printed += 1
            }
            index = max(index, page.lastIndex)
        }
    }
}

struct Cluster: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the cluster's leader, Raft position, voters, quotas and raised alarms (Flotilla).")
    @OptionGroup var global: GlobalOptions
    @Flag(help: "Print the status as one line of JSON.") var json = false

    func run() async throws {
        let client = try global.makeClient()
        let status: FlotillaClusterStatus
        do { status = try await client.clusterStatus() } catch { throw fail("Error retrieving the cluster's status", error) }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            if let data = try? encoder.encode(status) { out(String(decoding: data, as: UTF8.self)) }
            return
        }
        out("leader:    \(status.leaderMachineID ?? "none")")
        out("term:      \(status.term)")
        out("commit:    \(status.commitIndex) (applied \(status.appliedIndex), registry version \(status.registryVersion))")
        out("voters:    \(status.voters.joined(separator: ","))")
        if let units = status.units, let unitsMax = status.unitsMax {
            out("units:     \(units) of max_units \(unitsMax)")
        }
        if let bytes = status.unitFileBytes, let bytesMax = status.unitFileBytesMax {
            out("registry:  \(bytes) bytes of max_registry_bytes \(bytesMax)")
        }
        let alarms = status.alarms ?? []
        out("alarms:    \(alarms.isEmpty ? "none" : alarms.joined(separator: "; "))")
        out("answered:  \(status.answeredBy)")
    }
}
