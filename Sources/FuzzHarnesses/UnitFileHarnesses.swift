import FleetAPI
@testable import HTTPAPI
import UnitFile

enum UnitFileHarnesses {
    static func parser(_ bytes: [UInt8]) {
        guard let file = try? UnitFile(parsing: bytes) else { return }
        checkRoundTrip(file)
    }

    /// A parsed file serializes to text that parses back to the same file and hash.
    static func checkRoundTrip(_ file: UnitFile) {
        guard let again = try? UnitFile(parsing: file.serializedBytes()) else {
            fatalError("a unit file's own serialization did not parse")
        }
        require(again == file, "the serialize/parse round trip changed the file")
        require(again.hash == file.hash, "equal files hashed differently")
    }

    /// The first byte picks one of the bodies the API reads, the rest is the body, decoded as
    /// the API does (strict schema, then the entity). A unit's options go on into a unit file,
    /// which must survive both round trips (text and fleet's options).
    static func fleetJSON(_ bytes: [UInt8]) {
        guard let first = bytes.first else { return }
        let body = Array(bytes.dropFirst())
        switch first % 8 {
        case 0:
            guard let put = try? JSONBodies.decode(FleetUnitPutRequest.self, from: body, schema: .unitPut),
                  let options = put.options, let file = try? UnitFile(fleetOptions: options) else { return }
            checkRoundTrip(file)
            guard let again = try? UnitFile(fleetOptions: file.fleetOptions) else {
                fatalError("a unit file's own fleet options did not convert back")
            }
            require(again == file, "the fleet-options round trip changed the file")
        case 1: _ = try? JSONBodies.decode([FleetMachinePatchOperation].self, from: body, schema: .machinePatch)
        case 2: _ = try? JSONBodies.decode(StateReport.self, from: body, schema: .stateReport)
        case 3: _ = try? JSONBodies.decode(LeaseRenewalRequest.self, from: body, schema: .leaseRequest)
        case 4: _ = try? JSONBodies.decode(LeaseReleaseRequest.self, from: body, schema: .leaseRequest)
        case 5: _ = try? JSONBodies.decode(FlotillaACLTokenRequest.self, from: body, schema: .aclTokenRequest)
        case 6: _ = try? JSONBodies.decode(FlotillaAuthorizeRequest.self, from: body, schema: .authorizeRequest)
        default: _ = try? JSONBodies.decode(FlotillaKeyringChange.self, from: body, schema: .keyringChange)
        }
    }
}
