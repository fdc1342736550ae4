"""Concurrent clients: each worker issues fleet v1 operations on a small pool of units through
the API of a machine drawn at random, and records every operation with its invocation and
completion times and outcome (ok, fail: a definite refusal, unknown: no answer or a 5xx)."""

import random
import threading
import time

from . import api

ENV_PREFIX = "CHAOS_TOKEN="
TARGETS = ("inactive", "loaded", "launched")


def unit_names(count):
    return [f"chaos-{i}.service" for i in range(1, count + 1)]


def steady_names(count):
    """Units created before the faults and never written again: a stop of one of them has only
    faults on its own machine to explain it (the written units' stops hide among their writes)."""
    return [f"chaos-steady-{i}.service" for i in range(1, count + 1)]


def options(token):
    return [
        {"section": "Unit", "name": "Description", "value": f"chaos unit, file {token}"},
        {"section": "Service", "name": "ExecStart", "value": "/bin/sleep infinity"},
        {"section": "Service", "name": "Environment", "value": ENV_PREFIX + token},
    ]


def observed(unit):
    """The model's view of a unit as the API shows it: (token, target)."""
    token = None
    for option in unit.get("options", []):
        if option.get("section") == "Service" and option.get("name") == "Environment" and \
                str(option.get("value", "")).startswith(ENV_PREFIX):
            token = option["value"][len(ENV_PREFIX):]
    return [token, unit.get("desiredState")]


class Recorder:
    """The history, in memory (bounded by the run's length) and appended to a file as it goes."""

    def __init__(self, path, clock):
        self.lock = threading.Lock()
        self.ops = []
        self.clock = clock
        self.out = open(path, "w")
        self.next_id = 0

    def new_id(self):
        with self.lock:
            self.next_id += 1
            return self.next_id

    def record(self, op):
        import json
        with self.lock:
            self.ops.append(op)
            self.out.write(json.dumps(op) + "\n")
            self.out.flush()

    def close(self):
        self.out.close()


def perform(client, f, unit, arg, timeout_s):
    """Runs one operation: (outcome, result, status, error)."""
    path = f"/fleet/v1/units/{unit}"
    try:
        if f == "create":
            status, body = client.request("PUT", path, {"name": unit, "desiredState": arg[1], "options": options(arg[0])},
                                          timeout=timeout_s)
            ok = {201: "ok", 204: "ok"}
        elif f == "target":
            status, body = client.request("PUT", path, {"name": unit, "desiredState": arg}, timeout=timeout_s)
            ok = {204: "ok", 409: "conflict"}
        elif f == "replace":
            status, body = client.request("PUT", path, {"name": unit, "options": options(arg)}, timeout=timeout_s)
            ok = {201: "ok", 204: "ok"}
        elif f == "destroy":
            status, body = client.request("DELETE", path, timeout=timeout_s)
            ok = {204: "ok", 404: "absent"}
        elif f == "read":
            status, body = client.request("GET", path, timeout=timeout_s)
            if status == 200:
                return "ok", observed(body), status, None
            if status == 404:
                return "ok", None, status, None
            ok = {}
        elif f == "list":
            status, body = client.request("GET", "/fleet/v1/units", timeout=timeout_s)
            if status == 200 and not body.get("nextPageToken"):
                return "ok", {u["name"]: observed(u) for u in body.get("units", [])}, status, None
            ok = {}
        else:
            raise ValueError(f)
    except api.Unknown as error:
        return "unknown", None, None, str(error)
    if status in ok:
        return "ok", ok[status], status, None
    message = (body or {}).get("error", {}).get("message") if isinstance(body, dict) else None
    # A 5xx may come after the write was proposed (a forward that timed out, a commit not seen
    # in time): its effect is unknown. Any other answer is a definite refusal.
    return ("unknown" if status >= 500 else "fail"), None, status, message


class Workers:
    def __init__(self, bed, recorder, clock, seed, workers, units, steady=0, timeout_s=8.0):
        self.bed = bed
        self.recorder = recorder
        self.clock = clock
        self.seed = seed
        self.count = workers
        self.written = unit_names(units)  # what the workers write
        self.units = self.written + steady_names(steady)  # what the run creates and checks
        self.timeout_s = timeout_s
        self.stopping = threading.Event()
        self.threads = []

    def start(self):
        for k in range(self.count):
            thread = threading.Thread(target=self.loop, args=(k,), daemon=True)
            thread.start()
            self.threads.append(thread)

    def stop(self):
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=self.timeout_s + 5)

    def loop(self, k):
        rng = random.Random(self.seed * 1000 + k)
        sequence = 0
        while not self.stopping.is_set():
            sequence += 1
            unit = rng.choice(self.written)
            machine = rng.randint(1, self.bed.machines)
            f = rng.choices(("create", "target", "replace", "destroy", "read", "list"), (20, 25, 10, 8, 27, 10))[0]
            if f == "create":
                arg = [f"w{k}-{sequence}", rng.choices(TARGETS, (1, 1, 3))[0]]
            elif f == "target":
                arg = rng.choices(TARGETS, (1, 1, 3))[0]
            elif f == "replace":
                arg = f"w{k}-{sequence}"
            else:
                arg = None
            self.run_one(k, machine, f, unit if f != "list" else None, arg)
            self.stopping.wait(rng.uniform(0.05, 0.3))

    def run_one(self, process, machine, f, unit, arg):
        op_id = self.recorder.new_id()
        invoke = self.clock()
        outcome, result, status, error = perform(self.bed.client(machine), f, unit, arg, self.timeout_s)
        complete = self.clock()
        self.recorder.record({"id": op_id, "process": process, "machine": machine, "f": f, "unit": unit, "arg": arg,
                              "invoke": invoke, "complete": complete, "outcome": outcome, "result": result,
                              "status": status, "error": error})
