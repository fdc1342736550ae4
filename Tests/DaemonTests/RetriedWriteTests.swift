@testable import Daemon
import FleetAPI
import HTTPAPI
import Registry
import TestSupport
import Testing
import UnitFile

/// A write retried after a failover answers from the effect its first attempt may already have
/// had (Contrib/chaos: an applied replace answered 409 on its retry). `putIsInEffect` is what
/// the retry asks.
@Suite(.onBackgroundThreads) struct RetriedWriteTests {
    static let fileA = try! UnitFile(parsing: "[Service]\nExecStart=/bin/true\n")
    static let fileB = try! UnitFile(parsing: "[Service]\nExecStart=/bin/false\n")

    static func state() -> RegistryState {
        var state = RegistryState()
        let web = UnitSubmission(name: try! UnitName("web.service"), unitFile: fileA, targetState: .launched)
        let template = UnitSubmission(name: try! UnitName("app@.service"), unitFile: fileA, targetState: .inactive)
        #expect(state.apply(RegistryCommand(.submitUnits([web, template])), at: 1) == .applied(changedCount: 2))
        return state
    }

    @Test func aPutIsInEffectWhenTheFileAndTargetItNamesAreThere() throws {
        let state = Self.state()
        let web = try UnitName("web.service")
        func put(_ name: UnitName, _ target: FleetUnitTargetState?, _ file: UnitFile?) -> Bool {
            DaemonBackend.putIsInEffect(PutUnitRequest(name: name, desiredState: target, unitFile: file), in: state)
        }
        #expect(put(web, nil, Self.fileA), "a replace with the file it already has")
        #expect(put(web, .launched, Self.fileA))
        #expect(put(web, .launched, nil), "a target change already made")
        #expect(!put(web, .loaded, nil), "a target change not made yet")
        #expect(!put(web, nil, Self.fileB), "a replace not made yet")
        #expect(!put(web, .launched, Self.fileB))
        #expect(!put(try UnitName("gone.service"), .launched, Self.fileA), "a unit that is not there")
        #expect(put(try UnitName("app@.service"), .inactive, Self.fileA), "a template has no target of its own")
        #expect(!put(try UnitName("app@.service"), nil, Self.fileB))
    }
}

extension RetriedWriteTests {
    /// The same question asked by a peer that forwards, on the unit as the leader answers it.
    @Test func aForwardedPutIsInEffectWhenTheLeadersUnitMatches() throws {
        let web = try UnitName("web.service")
        let unit = FleetUnit(name: "web.service", options: Self.fileA.fleetOptions, desiredState: .launched)
        func put(_ target: FleetUnitTargetState?, _ file: UnitFile?) -> Bool {
            DaemonBackend.putIsInEffect(PutUnitRequest(name: web, desiredState: target, unitFile: file), on: unit)
        }
        #expect(put(nil, Self.fileA))
        #expect(put(.launched, Self.fileA))
        #expect(put(.launched, nil))
        #expect(!put(.inactive, nil))
        #expect(!put(nil, Self.fileB))
    }
}
