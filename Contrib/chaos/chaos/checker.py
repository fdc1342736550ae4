"""Reads a run's recorded history, observer samples and nemesis log, and says what went wrong.

Every check works on what was recorded, never on what flotillad says of itself: the history is
what clients were told, the samples are the machines' cgroups as the host sees them."""

from collections import defaultdict

from . import linear

WRITES = ("create", "target", "replace", "destroy")


def _freeze(value):
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def unit_histories(history, units):
    """{unit: [linear.Op]}: ok and unknown operations (definite refusals took no effect); a list
    becomes one read per unit of the pool."""
    per_unit = defaultdict(list)
    for entry in history:
        outcome = entry["outcome"]
        if outcome == "fail":
            continue
        complete = entry["complete"] if outcome == "ok" else None
        common = dict(invoke=entry["invoke"], complete=complete, process=entry["process"], machine=entry["machine"])
        if entry["f"] == "list":
            if outcome != "ok":
                continue
            listed = entry["result"]
            for unit in units:
                per_unit[unit].append(linear.Op(id=entry["id"], f="read", arg=None,
                                                result=_freeze(listed.get(unit)), **common))
            continue
        per_unit[entry["unit"]].append(linear.Op(id=entry["id"], f=entry["f"], arg=_freeze(entry["arg"]),
                                                 result=_freeze(entry["result"]), **common))
    return per_unit


def check_linearizability(history, units, budget=2_000_000):
    results = {}
    per_unit = unit_histories(history, units)
    for unit in units:
        results[unit] = linear.check(per_unit.get(unit, []), budget=budget)
    return results


def lost_writes(history, final):
    """Acknowledged writes that no later write could have overwritten, missing from `final`
    ({unit: (token, target) or None}, the registry after the run)."""
    lost = []
    by_unit = defaultdict(list)
    for entry in history:
        if entry["f"] in WRITES and entry["outcome"] != "fail":
            by_unit[entry["unit"]].append(entry)
    for unit, writes in by_unit.items():
        acked = [w for w in writes if w["outcome"] == "ok"]
        if not acked:
            continue
        last = max(acked, key=lambda w: w["complete"])
        if any(w is not last and w["invoke"] >= last["invoke"] for w in writes):
            continue  # a later or concurrent write may rightly have replaced it
        if any(w is not last and w["outcome"] == "unknown" for w in writes):
            continue  # an unknown write may take effect at any later time
        state = final.get(unit)
        f, arg, result = last["f"], _freeze(last["arg"]), last["result"]
        if f == "create":
            expected_ok = state == arg
        elif f == "replace":
            expected_ok = state is not None and state[0] == arg
        elif f == "target":
            expected_ok = (state is None) if result == "conflict" else (state is not None and state[1] == arg)
        else:  # destroy
            expected_ok = state is None
        if not expected_ok:
            lost.append({"unit": unit, "write": last, "final": state})
    return lost


def double_runs(samples, global_units=()):
    """Intervals in which a unit had processes on two machines in one observer pass:
    [{"unit", "machines", "start", "end", "overlap_ms"}]. A pass reads every machine within a
    few milliseconds, so two machines seen running a unit in one pass ran it at once."""
    open_since = {}
    found = []
    last_time = None
    for time, view in samples:
        running = defaultdict(list)
        for machine, units in view.items():
            for unit in (units or {}):
                if unit not in global_units:
                    running[unit].append(int(machine))
        for unit in list(open_since):
            if len(running.get(unit, [])) < 2:
                start, machines = open_since.pop(unit)
                found.append({"unit": unit, "machines": machines, "start": start, "end": time,
                              "overlap_ms": round((time - start) * 1000)})
        for unit, machines in running.items():
            if len(machines) >= 2 and unit not in open_since:
                open_since[unit] = (time, sorted(machines))
        last_time = time
    for unit, (start, machines) in open_since.items():
        found.append({"unit": unit, "machines": machines, "start": start, "end": last_time,
                      "overlap_ms": round((last_time - start) * 1000), "still_open": True})
    return found


def interruptions(samples):
    """Every time a unit's processes on a machine ended or changed between two passes that both
    read that machine: [{"unit", "machine", "time", "before", "after"}]."""
    previous = {}
    found = []
    for time, view in samples:
        for machine, units in view.items():
            if units is None:
                previous.pop(int(machine), None)  # not read (booting, powered off): no claim
                continue
            machine = int(machine)
            before = previous.get(machine)
            if before is not None:
                for unit, pids in before.items():
                    now = units.get(unit)
                    if now != pids:
                        found.append({"unit": unit, "machine": machine, "time": time, "before": pids, "after": now})
            previous[machine] = units
    return found


def may_stop(entry):
    """Whether a write can stop or restart a running unit: a destroy, a target below launched, or
    a new file (every create and replace of the workload carries a new one). A target of
    launched cannot: counting it let a busy workload explain away every stop (a pre-lease build
    fenced the machines that still had a quorum five times in 60 s and the check saw nothing)."""
    if entry["f"] in ("create", "replace", "destroy"):
        return True
    return entry["f"] == "target" and entry.get("arg") != "launched"


def unexplained_interruptions(samples, history, events, end_time, settle_s):
    """Interruptions that neither a client's write that can stop the unit nor a fault on its
    machine can explain: a fault elsewhere (or nothing) stopped or restarted the unit."""
    write_windows = defaultdict(list)
    for entry in history:
        if entry["f"] in WRITES and entry["outcome"] != "fail" and may_stop(entry):
            until = entry["complete"] if entry["outcome"] == "ok" else end_time
            write_windows[entry["unit"]].append((entry["invoke"], until + settle_s))
    fault_windows = defaultdict(list)
    for event in events:
        for machine in event["machines"]:
            fault_windows[machine].append((event["start"], event["end"] + settle_s))
    unexplained = []
    for item in interruptions(samples):
        t = item["time"]
        if any(a <= t <= b for a, b in write_windows.get(item["unit"], [])):
            continue
        if any(a <= t <= b for a, b in fault_windows.get(item["machine"], [])):
            continue
        unexplained.append(item)
    return unexplained


def expected_placement(final):
    """{unit: True when it should run on exactly one machine, False when on none}."""
    return {unit: (state is not None and state[1] == "launched") for unit, state in final.items()}


def converged(view, final, live_machines):
    """Whether one observer pass shows exactly the placement the final registry asks for."""
    want = expected_placement(final)
    running = defaultdict(list)
    for machine, units in view.items():
        for unit in (units or {}):
            running[unit].append(int(machine))
    for unit, launched in want.items():
        where = running.get(unit, [])
        if launched and (len(where) != 1 or where[0] not in live_machines):
            return False
        if not launched and where:
            return False
    return all(unit in want for unit in running)
