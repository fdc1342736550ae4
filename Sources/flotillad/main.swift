import Daemon
import Foundation
#if canImport(Glibc)
import CSystemd
// Two malloc arenas, not one per thread: the daemon's threads each hold little, and glibc's
// default (8 per core) kept about 7 MB of idle arena memory resident (measured: 36.6 -> 29.7 MB
// RSS idle on a test-bed machine). Set before any thread starts.
_ = mallopt(M_ARENA_MAX, 2)
#endif
import Logging
import SystemdBus

// flotillad: the peer daemon on every machine. Configuration: /etc/flotilla/flotilla.conf (or
// --config=PATH / FLOTILLA_CONFIG), FLOTILLA_* environment variables, then flags.
let arguments = Array(CommandLine.arguments.dropFirst())
if arguments.contains("--help") || arguments.contains("-h") {
    print("""
    usage: flotillad [--config=PATH] [--KEY=VALUE ...]
    Every setting of /etc/flotilla/flotilla.conf can be given as a flag (--public-ip=10.0.0.1) or
    as an environment variable (FLOTILLA_PUBLIC_IP=10.0.0.1). See Contrib/flotilla.conf.sample.
    """)
    exit(0)
}
if arguments.contains("--version") {
    print("flotillad \(FlotillaVersion.current)")
    exit(0)
}

var configPath = ProcessInfo.processInfo.environment["FLOTILLA_CONFIG"] ?? "/etc/flotilla/flotilla.conf"
var explicitConfig = ProcessInfo.processInfo.environment["FLOTILLA_CONFIG"] != nil
var flags: [String] = []
var index = 0
while index < arguments.count {
    let argument = arguments[index]
    if argument.hasPrefix("--config=") {
        configPath = String(argument.dropFirst("--config=".count))
        explicitConfig = true
    } else if argument == "--config", index + 1 < arguments.count {
        configPath = arguments[index + 1]
        explicitConfig = true
        index += 1
    } else {
        flags.append(argument)
    }
    index += 1
}

var environment = ProcessInfo.processInfo.environment
environment.removeValue(forKey: "FLOTILLA_CONFIG")
let fileText: String?
if FileManager.default.fileExists(atPath: configPath) {
    guard let text = try? String(contentsOfFile: configPath, encoding: .utf8) else {
        FileHandle.standardError.write(Data("flotillad: cannot read configuration file \(configPath)\n".utf8))
        exit(1)
    }
    fileText = text
} else if explicitConfig {
    FileHandle.standardError.write(Data("flotillad: configuration file \(configPath) does not exist\n".utf8))
    exit(1)
} else {
    fileText = nil
}

let configuration: DaemonConfiguration
let warnings: [String]
do {
    (configuration, warnings) = try DaemonConfiguration.resolve(fileText: fileText, environment: environment, arguments: flags)
} catch {
    FileHandle.standardError.write(Data("flotillad: \(error)\n".utf8))
    exit(2)
}

// Under systemd, log to the journal with priorities; otherwise to standard error.
let level = Logger.Level(rawValue: configuration.logLevel) ?? .info
if SystemdNotifier.isStandardErrorJournal {
    LoggingSystem.bootstrap { label in
        var handler = JournalLogHandler(label: label)
        handler.logLevel = level
        return handler
    }
} else {
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = level
        return handler
    }
}
let logger = Logger(label: "flotillad")
for warning in warnings { logger.warning("\(warning)") }

do {
    try await Daemon.run(configuration: configuration, logger: logger)
} catch {
    logger.critical("flotillad failed: \(error)")
    FileHandle.standardError.write(Data("flotillad: \(error)\n".utf8))
    exit(Daemon.exitStatus(for: error))
}
