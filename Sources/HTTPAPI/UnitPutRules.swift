import FleetAPI
import UnitFile

/// What `PUT /fleet/v1/units/{name}` does, decided from what the registry holds: fleet 1.0's
/// checks in fleet's order (`api/units.go`, `set`), so that fleet's own client works unchanged.
/// Pure, so the daemon and the tests' backends decide the same way.
///
/// fleetctl 1.0 creates a unit with one PUT carrying `name` and `options` and no
/// `desiredState`, then sets the state with a second PUT carrying only `desiredState`; both
/// must succeed. Where Flotilla goes beyond fleet (a new file for an existing unit, an instance
/// created from its template without options, a template created active) it says so below.
public enum UnitPutRules {
    /// What the registry holds under the request's name.
    public enum Existing: Hashable, Sendable {
        case none
        case unit(hash: UnitHash)
        case template(hash: UnitHash)
    }

    public enum Decision: Hashable, Sendable {
        /// 201: a new unit (or template) with this file and target state.
        case create(UnitFile, FleetUnitTargetState)
        /// 201: an instance of a template the registry holds, created from the template's file.
        case createInstanceOfTemplate(FleetUnitTargetState)
        /// 204: an existing unit. `file`: a new file to replace its own (nil: keep it);
        /// `target`: the new target state (nil: keep it).
        case update(file: UnitFile?, target: FleetUnitTargetState?)
    }

    public static func decide(_ request: PutUnitRequest, existing: Existing, templateOfInstanceExists: Bool) throws(APIError) -> Decision {
        let isTemplate = request.name.form == .template
        switch existing {
        case .none:
            guard let file = request.unitFile else {
                // Flotilla: `flotillactl start web@3.service` names an instance of a template
                // the cluster holds; fleetctl sends the template's options itself.
                if request.name.form == .instance, templateOfInstanceExists {
                    return .createInstanceOfTemplate(request.desiredState ?? .inactive)
                }
                throw .conflict("unit does not exist and options field empty")
            }
            // fleet created a template at any target state (no agent ever ran one); an active
            // template would read as a unit that never starts, so Flotilla refuses it as fleet
            // refused activating an existing one.
            if isTemplate, let state = request.desiredState, state != .inactive {
                throw .badRequest("cannot activate template \(request.name.rawValue.debugDescription)")
            }
            return .create(file, request.desiredState ?? .inactive)
        case .unit(let hash), .template(let hash):
            // Flotilla: options whose hash differs replace the unit's file (fleetctl's
            // --replace); fleet 1.0 ignored the options of an existing unit.
            let newFile = request.unitFile.flatMap { $0.hash == hash ? nil : $0 }
            guard let state = request.desiredState else {
                if let newFile { return .update(file: newFile, target: nil) }
                throw .conflict("must provide DesiredState to update existing unit")
            }
            if isTemplate, state != .inactive {
                throw .badRequest("cannot activate template \(request.name.rawValue.debugDescription)")
            }
            return .update(file: newFile, target: isTemplate ? nil : state)
        }
    }
}
