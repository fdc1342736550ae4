import TestSupport
import FleetAPI
import Testing

/// ACL policies: their text forms and what each allows.
@Suite(.onBackgroundThreads) struct ACLPolicyTests {
    @Test func eachPolicyAllowsWhatItsNameSays() throws {
        let management = try ACLPolicy(parsing: "management")
        let read = try ACLPolicy(parsing: "read")
        let operate = try ACLPolicy(parsing: "operator")
        let web = try ACLPolicy(parsing: "units:web-*.service")
        let cases: [(ACLPolicy, APIAccess, Bool)] = [
            (management, .manage, true), (management, .writeUnit("db.service"), true), (management, .operate, true),
            (read, .read, true), (read, .writeUnit("web-1.service"), false), (read, .operate, false), (read, .manage, false),
            (operate, .read, true), (operate, .operate, true), (operate, .writeUnit("web-1.service"), false), (operate, .manage, false),
            (web, .read, true), (web, .writeUnit("web-1.service"), true), (web, .writeUnit("db.service"), false),
            (web, .writeUnit("web-1.socket"), false), (web, .operate, false), (web, .manage, false),
            (read, .bootstrap, true),
        ]
        for (policy, access, allowed) in cases {
            #expect(policy.allows(access) == allowed, "\(policy) \(access)")
        }
        #expect([read, web].allows(.writeUnit("web-2.service")))
        #expect(![read, operate].allows(.manage))
        #expect(![ACLPolicy]().allows(.read))
    }

    @Test func policiesReadBackAsWrittenAndNothingElseParses() throws {
        for text in ["management", "read", "operator", "units:web-*.service", "units:*"] {
            #expect(try ACLPolicy(parsing: text).description == text)
        }
        for text in ["", "Management", "write", "units:", "units:[", "units:" + String(repeating: "a", count: 300), "read "] {
            #expect(throws: ACLPolicyError.self, "\(text.debugDescription)") { try ACLPolicy(parsing: text) }
        }
    }

    @Test func theTokenIsReadFromEitherHeader() {
        func token(_ headers: [String: String]) -> String? { APICaller.token { headers[$0] } }
        #expect(token(["X-Flotilla-Token": "abc"]) == "abc")
        #expect(token(["Authorization": "Bearer abc"]) == "abc")
        #expect(token(["Authorization": "bearer  abc"]) == "abc")
        #expect(token(["Authorization": "Basic abc"]) == nil)
        #expect(token(["X-Flotilla-Token": "", "Authorization": "Bearer b"]) == "b")
        #expect(token([:]) == nil)
        #expect(!"\(APICaller(kind: .network, machineID: "m1", token: "secret"))".contains("secret"), "a caller never prints its token")
    }
}
