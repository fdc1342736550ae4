import TestSupport
import Testing

@testable import UnitFile

@Suite(.onBackgroundThreads) struct SpecifierTests {
    @Test(arguments: [
        ("%n", "foo@bar.service"),
        ("%N", "foo@bar"),
        ("%p", "foo"),
        ("%i", "bar"),
        ("%%", "%"),
        ("%p.socket", "foo.socket"),
        ("%p-%i@%n", "foo-bar@foo@bar.service"),
        ("%%n", "%n"),
        ("%%%i", "%bar"),
        ("%H and %x", "%H and %x"),
        ("trailing %", "trailing %"),
        ("no specifiers", "no specifiers"),
        ("%", "%"),
    ])
    func instanceNameExpandsAsFleetDid(_ value: String, _ expected: String) throws {
        #expect(FleetSpecifiers.expand(value, for: try UnitName("foo@bar.service")) == expected)
    }

    @Test func plainUnitHasWholeNameAsPrefixAndEmptyInstance() throws {
        let name = try UnitName("web.service")
        #expect(FleetSpecifiers.expand("%p|%i|%N|%n", for: name) == "web||web|web.service")
    }

    @Test func templateHasEmptyInstance() throws {
        let name = try UnitName("web@.service")
        #expect(FleetSpecifiers.expand("%p|%i|%N|%n", for: name) == "web||web@|web@.service")
    }

    @Test func expansionDoesNotRescanItsOutput() throws {
        // Unit names cannot contain '%', but the expansion must be one pass regardless.
        #expect(FleetSpecifiers.expand("%%p", for: try UnitName("x.service")) == "%p")
    }
}
