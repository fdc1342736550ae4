import TestSupport
import Testing
import UnitFile

@Suite(.onBackgroundThreads) struct HostUnitNamesTests {
    @Test(arguments: [
        "flotillad.service", "flotilla.socket", "flotilla-lease.service",
        "dbus.service", "dbus.socket", "dbus-broker.service",
        "systemd-journald.service", "systemd-networkd.socket", "systemd-fsck@.service", "systemd-fsck@dev-sda1.service",
        "-.mount", "etc.mount", "usr.mount", "var.mount", "var.automount", "etc-ssh.mount", "usr-local-bin.mount",
        "etc\\x2f.mount",
    ])
    func theHostsOwnUnitsAreReserved(name: String) throws {
        #expect(HostUnitNames.reservation(of: try UnitName(name)) != nil, "\(name)")
    }

    @Test(arguments: [
        "web@1.service", "cache.service", "docker-registry.service", "flotilla-demo.service", "dbusmonitor.service",
        "my-systemd-helper.service", "var-lib-data.mount", "srv-nfs.mount", "mnt.mount", "etc.service", "usrdata.mount",
        "varnish.mount",
    ])
    func clusterUnitsAreNot(name: String) throws {
        #expect(HostUnitNames.reservation(of: try UnitName(name)) == nil, "\(name)")
    }

    @Test func mountNamesAreReadAsSystemdEscapesThem() throws {
        #expect(HostUnitNames.reservation(of: try UnitName("-.mount"))?.contains("a mount of / ") == true)
        #expect(HostUnitNames.reservation(of: try UnitName("usr-lib\\x2dextra.mount"))?.contains("/usr/lib-extra") == true)
        // A broken escape is not a path: nothing to reserve (systemd refuses the name itself).
        #expect(HostUnitNames.reservation(of: try UnitName("etc\\x2.mount")) == nil)
    }
}
