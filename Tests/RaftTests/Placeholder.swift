import Testing
@testable import Raft
@Test func placeholder() {}
