"""The ground truth of what ran where: every interval, one pass over every machine's cgroup tree
as the host sees it, independent of flotillad and of the machines' systemd.

A unit's cgroup holds its processes from the fork to the last exit, so a unit is running
(activating, active or deactivating) exactly while its `cgroup.procs` is not empty, and the
process IDs stand in for MainPID (a restart changes them). Asking each machine's systemd over
its bus instead was tried by the end-to-end tests first: a systemd busy starting or stopping
units answered nothing for many seconds, so the samples missed exactly the moments that matter
(Tests/EndToEndTests/UnitSampler.swift says more)."""

import fnmatch
import json
import os
import threading
import time

CGROUP_ROOT = "/sys/fs/cgroup" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "/sys/fs/cgroup/unified"


def system_slice(pid):
    """The machine's system.slice in the host's cgroup2 tree, from its PID 1's cgroup."""
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("0::") and line.endswith("/init.scope"):
            return CGROUP_ROOT + line[3:-len("/init.scope")] + "/system.slice"
    return None


def running_units(slice_path, pattern):
    """{unit: "pid,pid"} for the units matching `pattern` that have processes, or None."""
    try:
        entries = os.listdir(slice_path)
    except OSError:
        return None
    running = {}
    for entry in entries:
        if not fnmatch.fnmatchcase(entry, pattern):
            continue
        try:
            with open(os.path.join(slice_path, entry, "cgroup.procs")) as f:
                pids = sorted(f.read().split())
        except OSError:
            continue
        if pids:
            running[entry] = ",".join(pids)
    return running


class Observer:
    def __init__(self, bed, clock, path, pattern="chaos-*.service", interval_s=0.1):
        self.bed = bed
        self.clock = clock
        self.pattern = pattern
        self.interval_s = interval_s
        self.out = open(path, "w")
        self.samples = []  # (time, {machine: {unit: pids} or None})
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.slices = {}
        self.thread = threading.Thread(target=self.loop, daemon=True)
        # Looking a machine's PID 1 up takes a subprocess (tens of milliseconds): done off the
        # sampling loop, so that a machine booting again does not delay the passes.
        self.finder = threading.Thread(target=self.find_slices, daemon=True)

    def start(self):
        self.thread.start()
        self.finder.start()

    def stop(self):
        self.stopping.set()
        self.thread.join(timeout=10)
        self.finder.join(timeout=30)
        self.out.close()

    def find_slices(self):
        while not self.stopping.is_set():
            for machine in range(1, self.bed.machines + 1):
                path = self.slices.get(machine)
                if path and os.path.isdir(path):
                    continue
                pid = self.bed.pid(machine)
                self.slices[machine] = system_slice(pid) if pid else None
            self.stopping.wait(0.5)

    def _slice(self, machine):
        # A machine booted again has a new PID 1 and a new tree: None until the finder has it.
        path = self.slices.get(machine)
        return path if path and os.path.isdir(path) else None

    def loop(self):
        while not self.stopping.is_set():
            begun = time.monotonic()
            if not self.slices:
                self.stopping.wait(0.05)
                continue
            at = self.clock()
            view = {}
            for machine in range(1, self.bed.machines + 1):
                path = self._slice(machine)
                view[machine] = running_units(path, self.pattern) if path else None
            with self.lock:
                self.samples.append((at, view))
            self.out.write(json.dumps({"time": at, "machines": view}) + "\n")
            spent = time.monotonic() - begun
            self.stopping.wait(max(0.0, self.interval_s - spent))

    def latest(self):
        with self.lock:
            return self.samples[-1] if self.samples else None
