import ArgumentParser
import Client
import FleetAPI
import Foundation
import UnitFile

/// flotillactl: fleetctl's commands, flags and output against flotillad's API, plus Flotilla's
/// drain, undrain and watch. Exit status: 0 success, 1 any failure (usage errors included),
/// with the reason on stderr.
public struct Flotillactl: AsyncParsableCommand {
    public static let version = "0.1.0"

    public static let configuration = CommandConfiguration(
        commandName: "flotillactl",
        abstract: "Control a Flotilla cluster (fleetctl's commands against flotillad's API).",
        discussion: """
            Global options (--endpoint, --request-timeout, --ca-file) may come before or after the \
            command. The endpoint defaults to $FLOTILLACTL_ENDPOINT, then $FLEETCTL_ENDPOINT, then \
            unix:///var/run/flotilla.sock. For an https:// endpoint the server's certificate is \
            checked against --ca-file ($FLOTILLACTL_CA_FILE, $FLEETCTL_CA_FILE), else the system's CAs.
            """,
        version: version,
        subcommands: [
            ListMachines.self, ListUnits.self, ListUnitFiles.self, Submit.self, Load.self, Start.self, Stop.self,
            Unload.self, Destroy.self, Restart.self, Cat.self, Status.self, Journal.self, Version.self,
            Drain.self, Undrain.self, Watch.self, Cluster.self, Keyring.self, TLS.self, ACL.self,
        ]
    )

    public init() {}

    /// The global options that may be written before the command name (as fleetctl's were):
    /// they are moved after it, where every command's `GlobalOptions` reads them.
    static func movingGlobalOptions(_ arguments: [String]) -> [String] {
        var leading: [String] = []
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            if ["--endpoint", "--request-timeout", "--ca-file", "--token", "--cert-file", "--key-file"].contains(argument) {
                leading.append(argument)
                if index + 1 < arguments.count { leading.append(arguments[index + 1]) }
                index += 2
            } else if ["--endpoint=", "--request-timeout=", "--ca-file=", "--token=", "--cert-file=", "--key-file="].contains(where: argument.hasPrefix) {
                leading.append(argument)
                index += 1
            } else {
                break
            }
        }
        guard index < arguments.count, !leading.isEmpty else { return arguments }
        // After the whole command path: a group's (keyring, tls) subcommand names come first.
        var end = index + 1
        var command = configuration.subcommands.first { $0._commandName == arguments[index] }
        while let group = command, end < arguments.count,
              let sub = group.configuration.subcommands.first(where: { $0._commandName == arguments[end] }) {
            command = sub
            end += 1
        }
        return Array(arguments[index..<end]) + leading + arguments[end...]
    }

    /// Runs one command line and returns the exit status (the thin executable exits with it).
    public static func run(arguments: [String]) async -> Int32 {
        do {
            var command = try parseAsRoot(movingGlobalOptions(arguments))
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
            return 0
        } catch let exit as ExitCode {
            return exit.rawValue
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                out(fullMessage(for: error))
                return 0
            }
            err(fullMessage(for: error))
            return 1
        }
    }
}

/// Options every command takes.
public struct GlobalOptions: ParsableArguments {
    @Option(help: "flotillad's API: unix:///path/to.sock, http://host:port or https://host:port.")
    var endpoint: String?

    @Option(name: .customLong("ca-file"),
            help: "A PEM file of the CA certificates that sign an https endpoint's certificate (default: the system's CAs).")
    var caFile: String?

    @Option(name: .customLong("request-timeout"), help: "Seconds to allow a single request before it fails (default 10).")
    var requestTimeout: Double?

    @Option(help: "An ACL token's secret, for an api_listen endpoint (default: FLOTILLACTL_TOKEN; the unix socket needs none).")
    var token: String?

    @Option(name: .customLong("cert-file"), help: "A client certificate (PEM) for an https endpoint, as fleetctl's --cert-file.")
    var certFile: String?

    @Option(name: .customLong("key-file"), help: "The client certificate's private key (PEM), as fleetctl's --key-file.")
    var keyFile: String?

    public init() {}

    func makeClient() throws -> FlotillaClient {
        let environment = ProcessInfo.processInfo.environment
        let endpoint: APIEndpoint
        do {
            endpoint = try resolveEndpoint(flag: self.endpoint, environment: environment)
        } catch {
            err("Unable to initialize client: \(error)")
            throw ExitCode.failure
        }
        let tls: ClientTLS?
        switch resolveClientTLS(caFileFlag: caFile, certificateFileFlag: certFile, keyFileFlag: keyFile, environment: environment) {
        case .success(let resolved): tls = resolved
        case .failure(let error):
            err("Unable to initialize client: \(error)")
            throw ExitCode.failure
        }
        switch resolveRequestTimeout(flag: requestTimeout, environment: environment) {
        case .success(let timeout):
            let token = [self.token, environment["FLOTILLACTL_TOKEN"]].compactMap { $0 }.first { !$0.isEmpty }
            return FlotillaClient(endpoint: endpoint, requestTimeout: timeout, tls: tls, token: token)
        case .failure(let error):
            err("Unable to initialize client: \(error)")
            throw ExitCode.failure
        }
    }
}

/// Prints `context: error` to stderr and fails the command: the one way commands report failure.
func fail(_ context: String, _ error: any Error) -> ExitCode {
    err("\(context): \(error)")
    return .failure
}

/// Machine ID -> IP, fetched once per command as fleetctl cached it; empty if unavailable.
func machineIPs(_ client: FlotillaClient) async -> [String: String] {
    guard let machines = try? await client.listMachines() else { return [:] }
    return Dictionary(machines.map { ($0.id, $0.primaryIP) }, uniquingKeysWith: { first, _ in first })
}
