/// `GET /fleet/v1/discovery`: the fleet v1 API described in Google's API discovery format
/// (https://developers.google.com/discovery/v1/reference/apis), which is what fleet served there
/// and what clients generated from fleet's schema expect. Written for Flotilla: it describes
/// the same resources and entities, plus the machine metadata PATCH fleet added later.
/// As in fleet, `rootUrl` is a placeholder: a client sets its own endpoint.
enum DiscoveryDocument {
    static let bytes: [UInt8] = Array(text.utf8)

    static let text = #"""
    {
      "kind": "discovery#restDescription",
      "discoveryVersion": "v1",
      "id": "fleet:v1",
      "name": "fleet",
      "version": "v1",
      "title": "fleet-compatible API served by Flotilla",
      "description": "Desired units, their observed states and the cluster's machines.",
      "protocol": "rest",
      "rootUrl": "$ENDPOINT/",
      "servicePath": "fleet/v1/",
      "basePath": "/fleet/v1/",
      "baseUrl": "$ENDPOINT/fleet/v1/",
      "batchPath": "batch",
      "parameters": {},
      "auth": {},
      "schemas": {
        "UnitOption": {
          "id": "UnitOption",
          "type": "object",
          "description": "One option of a systemd unit file.",
          "properties": {
            "section": {"type": "string", "description": "Section holding the option, e.g. Service."},
            "name": {"type": "string", "description": "Option name, e.g. ExecStart."},
            "value": {"type": "string", "description": "Option value as written in the file."}
          }
        },
        "Unit": {
          "id": "Unit",
          "type": "object",
          "properties": {
            "name": {"type": "string", "description": "Unit name, unique in the cluster."},
            "options": {"type": "array", "items": {"$ref": "UnitOption"}},
            "desiredState": {"type": "string", "enum": ["inactive", "loaded", "launched"]},
            "currentState": {"type": "string", "enum": ["inactive", "loaded", "launched"], "description": "Read-only."},
            "machineID": {"type": "string", "description": "Read-only: the machine the unit is scheduled to."}
          }
        },
        "UnitPage": {
          "id": "UnitPage",
          "type": "object",
          "properties": {
            "units": {"type": "array", "items": {"$ref": "Unit"}},
            "nextPageToken": {"type": "string"}
          }
        },
        "UnitState": {
          "id": "UnitState",
          "type": "object",
          "properties": {
            "name": {"type": "string"},
            "hash": {"type": "string", "description": "SHA-1 of the unit file."},
            "machineID": {"type": "string", "description": "Machine that reported the state."},
            "systemdLoadState": {"type": "string"},
            "systemdActiveState": {"type": "string"},
            "systemdSubState": {"type": "string"}
          }
        },
        "UnitStatePage": {
          "id": "UnitStatePage",
          "type": "object",
          "properties": {
            "states": {"type": "array", "items": {"$ref": "UnitState"}},
            "nextPageToken": {"type": "string"}
          }
        },
        "Machine": {
          "id": "Machine",
          "type": "object",
          "properties": {
            "id": {"type": "string"},
            "primaryIP": {"type": "string"},
            "metadata": {"type": "object", "additionalProperties": {"type": "string"}}
          }
        },
        "MachinePage": {
          "id": "MachinePage",
          "type": "object",
          "properties": {
            "machines": {"type": "array", "items": {"$ref": "Machine"}},
            "nextPageToken": {"type": "string"}
          }
        },
        "MachineMetadataOperation": {
          "id": "MachineMetadataOperation",
          "type": "object",
          "description": "A JSON-Patch operation on /<machineID>/metadata/<key>.",
          "properties": {
            "op": {"type": "string", "enum": ["add", "remove", "replace"]},
            "path": {"type": "string"},
            "value": {"type": "string"}
          }
        },
        "Error": {
          "id": "Error",
          "type": "object",
          "properties": {
            "error": {
              "type": "object",
              "properties": {
                "code": {"type": "integer", "format": "int32"},
                "message": {"type": "string"}
              }
            }
          }
        }
      },
      "resources": {
        "Units": {
          "methods": {
            "List": {
              "id": "fleet.Unit.List",
              "description": "A page of units.",
              "httpMethod": "GET",
              "path": "units",
              "parameters": {"nextPageToken": {"type": "string", "location": "query"}},
              "response": {"$ref": "UnitPage"}
            },
            "Get": {
              "id": "fleet.Unit.Get",
              "description": "One unit.",
              "httpMethod": "GET",
              "path": "units/{unitName}",
              "parameters": {"unitName": {"type": "string", "location": "path", "required": true}},
              "parameterOrder": ["unitName"],
              "response": {"$ref": "Unit"}
            },
            "Set": {
              "id": "fleet.Unit.Set",
              "description": "Creates a unit (201) or changes its desired state (204).",
              "httpMethod": "PUT",
              "path": "units/{unitName}",
              "parameters": {"unitName": {"type": "string", "location": "path", "required": true}},
              "parameterOrder": ["unitName"],
              "request": {"$ref": "Unit"}
            },
            "Delete": {
              "id": "fleet.Unit.Delete",
              "description": "Destroys a unit.",
              "httpMethod": "DELETE",
              "path": "units/{unitName}",
              "parameters": {"unitName": {"type": "string", "location": "path", "required": true}},
              "parameterOrder": ["unitName"]
            }
          }
        },
        "UnitState": {
          "methods": {
            "List": {
              "id": "fleet.UnitState.List",
              "description": "A page of observed unit states, optionally of one machine or one unit.",
              "httpMethod": "GET",
              "path": "state",
              "parameters": {
                "nextPageToken": {"type": "string", "location": "query"},
                "machineID": {"type": "string", "location": "query"},
                "unitName": {"type": "string", "location": "query"}
              },
              "response": {"$ref": "UnitStatePage"}
            }
          }
        },
        "Machines": {
          "methods": {
            "List": {
              "id": "fleet.Machine.List",
              "description": "A page of machines.",
              "httpMethod": "GET",
              "path": "machines",
              "parameters": {"nextPageToken": {"type": "string", "location": "query"}},
              "response": {"$ref": "MachinePage"}
            },
            "Patch": {
              "id": "fleet.Machine.Patch",
              "description": "Adds, replaces or removes machine metadata, in order, all or nothing.",
              "httpMethod": "PATCH",
              "path": "machines",
              "request": {"type": "array", "items": {"$ref": "MachineMetadataOperation"}}
            }
          }
        }
      }
    }
    """#
}
