// fleetctl-compatible commands live here.
