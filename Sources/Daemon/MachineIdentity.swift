import Membership
import MembershipShell

/// This machine's identity from /etc/machine-id, as membership reads it. (A file of its own:
/// MembershipShell's `MachineID` reader and Registry's `MachineID` type share a name.)
enum MachineIdentity {
    static func read(path: String) throws -> MemberID {
        try MachineID.read(path: path)
    }
}
