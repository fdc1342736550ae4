import SystemdBus

let arguments = Array(CommandLine.arguments.dropFirst())
let pid = arguments[0]
var configuration = SystemdBusConfiguration(bus: .address("unix:path=/proc/\(pid)/root/run/dbus/system_bus_socket"))
configuration.unitFileDirectory = UnitFileDirectory(writePath: "/proc/\(pid)/root/run/flotilla/units", managerPath: "/run/flotilla/units")
let manager = SystemdManager(configuration: configuration)
let clock = ContinuousClock()
var t0 = clock.now
try await manager.connect()
print("connected", clock.now - t0)
let unit = try UnitName("smoke.service")
let watcher = Task {
    for await change in manager.stateChanges { print("change", change) }
}
try await manager.watch([unit])
t0 = clock.now
print(try manager.writeUnitFile(unit, contents: "[Service]\nExecStart=/bin/sleep 1000\n"))
print(try await manager.linkUnitFiles([unit]))
try await manager.reload()
print("reload", clock.now - t0)
let result = try await manager.startUnit(unit)
print("start", result, clock.now - t0)
print(try await manager.unitProperties(unit))
print(try await manager.stopUnit(unit))
do { _ = try await manager.startUnit(try UnitName("nonexistent-x.service")) } catch { print("error:", error) }
try await Task.sleep(for: .milliseconds(200))
await manager.close()
watcher.cancel()
