import TestSupport
import Testing

@testable import UnitFile

/// A unit file as a user would submit it, the canonical bytes fleet stored for it, and the
/// SHA-1 fleet showed for it.
struct FleetHashCase: Sendable, CustomTestStringConvertible {
    let behaviour: String
    let input: String
    let canonical: String
    let sha1: String

    var testDescription: String { behaviour }
}

/// Expected values were not produced by this module. `canonical` is written by hand from
/// go-systemd's serialize.go; `sha1` is `sha1sum` of it, and both were confirmed against the
/// real thing: fleet's hash is `sha1.Sum(unit.Serialize(unit.Deserialize(file)))`, which this
/// Go program prints (go 1.19, Debian bookworm's golang-github-coreos-go-systemd-dev 22.3.2,
/// built with GO111MODULE=off GOPATH=/usr/share/gocode):
///
///     opts, err := unit.Deserialize(f)
///     b, _ := ioutil.ReadAll(unit.Serialize(opts))
///     fmt.Printf("%x\n", sha1.Sum(b))
let fleetHashCases: [FleetHashCase] = [
    FleetHashCase(
        behaviour: "a plain unit hashes as fleet did",
        input: "[Unit]\nDescription=Hello\n\n[Service]\nExecStart=/usr/bin/sleep infinity\n",
        canonical: "[Unit]\nDescription=Hello\n\n[Service]\nExecStart=/usr/bin/sleep infinity\n",
        sha1: "48c842a438f838dc3fc8224c67f7a4b7eb825c67"),
    FleetHashCase(
        behaviour: "comments, CRLF, padding, repeated sections and empty assignments hash as fleet did",
        input: "# comment\r\n[Unit]\r\nDescription =  Web server  \r\n; another\r\n\r\n[Service]\r\n"
            + "ExecStart=/bin/web\r\nEnvironment=\r\n[Unit]\r\nAfter=network.target\r\n[X-Fleet]\r\n"
            + "Conflicts=web@*.service\r\n",
        canonical: "[Unit]\nDescription=Web server\nAfter=network.target\n\n[Service]\nExecStart=/bin/web\n"
            + "Environment=\n\n[X-Fleet]\nConflicts=web@*.service\n",
        sha1: "1c980d76da922a3e059b7f7beec9f1f947f0c5a3"),
    FleetHashCase(
        behaviour: "continuation lines keep their backslashes and line breaks as in fleet",
        input: "[Service]\nExecStart=/bin/sh -c \\\n    'echo hello; \\\n     sleep 1'\nRestart=always\n",
        canonical: "[Service]\nExecStart=/bin/sh -c \\\n    'echo hello; \\\n     sleep 1'\nRestart=always\n",
        sha1: "707fd013a285ac21cd66f259f70507909e6cd80c"),
    FleetHashCase(
        behaviour: "a continuation ended by a blank line keeps one line break as in fleet",
        input: "[Service]\nExecStart=/bin/true \\\n\nRestart=no\n",
        canonical: "[Service]\nExecStart=/bin/true \\\n\nRestart=no\n",
        sha1: "c42155f8fb7634ad00622df19cdca1ab94f95495"),
    FleetHashCase(
        behaviour: "empty sections vanish and sections follow their first option as in fleet",
        input: "[Install]\n[Unit]\nDescription=x\n[Install]\nWantedBy=multi-user.target\n",
        canonical: "[Unit]\nDescription=x\n\n[Install]\nWantedBy=multi-user.target\n",
        sha1: "9f6ab509226fd21302067db6950a01285070483d"),
    FleetHashCase(
        behaviour: "a file without options hashes as the empty string",
        input: "# nothing here\n",
        canonical: "",
        sha1: "da39a3ee5e6b4b0d3255bfef95601890afd80709"),
    FleetHashCase(
        behaviour: "a byte order mark does not change the hash",
        input: "\u{FEFF}[Unit]\nDescription=bom\n",
        canonical: "[Unit]\nDescription=bom\n",
        sha1: "7f7f1dba6e5050be9d9292eb27eea974b78c2fdf"),
]

@Suite(.onBackgroundThreads) struct HashTests {
    @Test(arguments: fleetHashCases)
    func hashMatchesFleet(_ testCase: FleetHashCase) throws {
        let file = try UnitFile(parsing: testCase.input)
        #expect(file.serialized() == testCase.canonical)
        #expect(file.hash.hex == testCase.sha1)
    }

    @Test func hashPrintsAndParsesAsFleetDid() throws {
        let hash = try UnitHash(hex: "707FD013A285AC21CD66F259F70507909E6CD80C")
        #expect(hash.hex == "707fd013a285ac21cd66f259f70507909e6cd80c")
        #expect(hash.short == "707fd01")
        #expect(hash.description == hash.hex)
        #expect(hash == (try UnitFile(parsing: fleetHashCases[2].input)).hash)
    }

    @Test(arguments: ["", "abc", String(repeating: "0", count: 39), String(repeating: "g", count: 40)])
    func malformedHashTextIsRefused(_ text: String) {
        #expect(throws: UnitHashError.self) { try UnitHash(hex: text) }
    }

    @Test func equalFilesHaveEqualHashesAndDifferentFilesDifferentOnes() throws {
        let first = try UnitFile(parsing: "[A]\nx=1\n[B]\ny=2\n[A]\nz=3\n")
        let second = try UnitFile(parsing: "[A]\nx = 1\nz=3\n\n[B]\ny=2\n")
        let third = try UnitFile(parsing: "[A]\nx=1\nz=3\n[B]\ny=3\n")
        #expect(first == second)
        #expect(first.hash == second.hash)
        #expect(first.hash != third.hash)
    }
}
