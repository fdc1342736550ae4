"""Faults, one at a time, on a schedule drawn from the run's seed.

A schedule is a list of steps (quiet seconds, fault kind, fault seconds, a choice number); which
machine a step hits is decided when it runs (the leader is whoever leads then), from the choice
number, so a seed replays the same schedule. Every fault is logged with the machines it touched:
the checker allows units on those machines (and only those) to stop or move, until a settling
time after the fault ends."""

import json
import random
import threading

KINDS = {
    # kind: (weight, what it does)
    "kill-daemon": (3, "SIGKILL flotillad on a machine (systemd restarts it)"),
    "kill-leader-daemon": (3, "SIGKILL the leader's flotillad"),
    "pause-daemon": (3, "SIGSTOP a flotillad for longer than its lease (agent_ttl, 2 s), then SIGCONT"),
    "pause-leader-daemon": (2, "SIGSTOP the leader's flotillad, then SIGCONT"),
    "isolate": (3, "unplug a machine from the network"),
    "isolate-leader": (3, "unplug the leader from the network"),
    "split": (2, "cut a minority (1 or 2 machines, the leader among them half the time) from the rest"),
    "bridge": (1, "two halves that each see a middle machine but not each other"),
    "one-way": (2, "a machine stops receiving from the others (its packets still go out)"),
    "crash-machine": (1, "SIGKILL a machine's PID 1 (power cut), then boot it again"),
    "poweroff-machine": (1, "shut a machine down cleanly, then boot it again"),
}

# The named scenario of issue 15: before the leader-blip fix, isolating the leader 5 times in
# 60 s for 6 s each, under 6 writers, stopped every unit of a 3-machine cluster.
LEADER_BLIP = [(6.0, "isolate-leader", 6.0, 0)] * 5


def schedule(seed, duration_s, scenario="mixed"):
    if scenario == "leader-blip":
        return list(LEADER_BLIP)
    if scenario == "none":
        return []
    if scenario != "mixed" and scenario not in KINDS:
        raise ValueError(f"unknown scenario {scenario!r}; one of: mixed, leader-blip, none, " + ", ".join(KINDS))
    rng = random.Random(seed)
    kinds = list(KINDS) if scenario == "mixed" else [scenario]
    weights = [KINDS[k][0] for k in kinds]
    steps = []
    t = 0.0
    while True:
        quiet = rng.uniform(3.0, 8.0)
        kind = rng.choices(kinds, weights)[0]
        length = rng.uniform(3.0, 8.0) if kind.startswith("pause") else rng.uniform(4.0, 12.0)
        if t + quiet + length > duration_s:
            break
        steps.append((round(quiet, 2), kind, round(length, 2), rng.randrange(1 << 30)))
        t += quiet + length
    return steps


class Nemesis:
    def __init__(self, bed, clock, log_path, steps, log=print):
        self.bed = bed
        self.clock = clock
        self.steps = steps
        self.events = []
        self.out = open(log_path, "w")
        self.log = log
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.kills = {i: 0 for i in range(1, bed.machines + 1)}  # flotillad SIGKILLs per machine
        self.boots = set()  # machines that booted again (their journal and NRestarts start anew)

    def start(self):
        self.thread.start()

    def join(self):
        self.thread.join()
        self.out.close()

    def stop(self):
        self.stopping.set()

    def record(self, event):
        self.events.append(event)
        self.out.write(json.dumps(event) + "\n")
        self.out.flush()
        self.log(f"  nemesis {event['start']:.1f}-{event['end']:.1f} s: {event['kind']} {event['machines']} {event.get('detail', '')}")

    def run(self):
        for quiet, kind, length, choice in self.steps:
            if self.stopping.wait(quiet):
                return
            try:
                self.fault(kind, length, choice)
            except Exception as error:  # a fault that could not be applied is logged, not fatal
                self.record({"start": self.clock(), "end": self.clock(), "kind": kind, "machines": [],
                             "detail": f"not applied: {error}"})

    def _target(self, kind, choice):
        n = self.bed.machines
        if "leader" in kind:
            leader = self.bed.leader()
            if leader is not None:
                return leader
        return 1 + choice % n

    def fault(self, kind, length, choice):
        bed = self.bed
        n = bed.machines
        rng = random.Random(choice)
        start = self.clock()
        detail = ""
        if kind in ("kill-daemon", "kill-leader-daemon"):
            m = self._target(kind, choice)
            pid = bed.daemon_main_pid(m)
            bed.exec(m, "systemctl", "kill", "--signal=SIGKILL", "--kill-whom=main", "flotillad.service")
            self.kills[m] += 1
            detail = f"pid {pid}"
            touched = [m]
            self.stopping.wait(length)
        elif kind in ("pause-daemon", "pause-leader-daemon"):
            m = self._target(kind, choice)
            pid = bed.daemon_main_pid(m)
            bed.exec(m, "kill", "-STOP", pid)
            self.stopping.wait(length)
            bed.exec(m, "kill", "-CONT", pid, check=False)
            detail = f"pid {pid}"
            touched = [m]
        elif kind in ("isolate", "isolate-leader"):
            m = self._target(kind, choice)
            bed.testbed("isolate", m)
            self.stopping.wait(length)
            bed.testbed("rejoin", m)
            touched = [m]
        elif kind == "split":
            leader = bed.leader()
            size = 1 + choice % 2 if n >= 5 else 1
            others = [i for i in range(1, n + 1) if i != leader]
            rng.shuffle(others)
            minority = ([leader] if leader and choice % 4 < 2 else []) + others
            minority = sorted(minority[:size])
            majority = [i for i in range(1, n + 1) if i not in minority]
            voters = bed.voters() or set(range(1, min(3, n) + 1))
            self._cut_for(bed, [(a, b) for a in minority for b in majority], length)
            # The side without a majority of the voters loses its leases, whatever its size:
            # its machines are the ones touched (two of three voters can be in the "minority").
            quorate = [side for side in (majority, minority) if 2 * len(voters.intersection(side)) > len(voters)]
            touched = sorted(i for i in range(1, n + 1) if not quorate or i not in quorate[0])
            detail = f"minority {minority}, voters {sorted(voters)}"
        elif kind == "bridge":
            machines = list(range(1, n + 1))
            rng.shuffle(machines)
            middle = machines[0]
            half = (n - 1) // 2
            a_side, b_side = sorted(machines[1:1 + half]), sorted(machines[1 + half:])
            self._cut_for(bed, [(a, b) for a in a_side for b in b_side], length)
            detail = f"middle m{middle}, halves {a_side} {b_side}"
            # Every machine but the middle one lost some of its peers.
            touched = sorted(a_side + b_side)
        elif kind == "one-way":
            m = 1 + choice % n
            sources = " , ".join(bed.addresses[i] for i in range(1, n + 1) if i != m)
            script = ("add table inet flotilla_chaos\n"
                      "add chain inet flotilla_chaos input { type filter hook input priority -10; }\n"
                      f"add rule inet flotilla_chaos input ip saddr {{ {sources} }} drop\n")
            self._nft(m, script)
            self.stopping.wait(length)
            self._nft(m, "delete table inet flotilla_chaos\n")
            detail = "drops what it receives from the other machines"
            touched = [m]
        elif kind in ("crash-machine", "poweroff-machine"):
            m = 1 + choice % n
            bed.testbed("kill" if kind == "crash-machine" else "poweroff", m, timeout=120)
            self.stopping.wait(length)
            bed.testbed("start", m, timeout=300)
            self.boots.add(m)
            touched = [m]
        else:
            raise ValueError(kind)
        self.record({"start": start, "end": self.clock(), "kind": kind, "machines": touched, "detail": detail})

    def _cut_for(self, bed, pairs, length):
        """Cuts every (a, b) link, waits `length` seconds (or until stopped), heals them."""
        for a, b in pairs:
            bed.testbed("cut", a, b)
        self.stopping.wait(length)
        for a, b in pairs:
            bed.testbed("heal", a, b)

    def _nft(self, machine, script):
        import subprocess
        from .bed import TESTBED
        proc = subprocess.run([TESTBED, "--prefix", self.bed.prefix, "exec", str(machine), "nft", "-f", "-"],
                              input=script, capture_output=True, text=True, timeout=30)
        if proc.returncode != 0:
            raise RuntimeError(f"nft in m{machine}: {proc.stderr.strip()}")

    def heal_all(self):
        """Undoes anything a stopped nemesis may have left (idempotent)."""
        n = self.bed.machines
        for i in range(1, n + 1):
            self.bed.testbed("rejoin", i, check=False)
            self.bed.exec(i, "nft", "delete", "table", "inet", "flotilla_chaos", check=False)
            for j in range(i + 1, n + 1):
                self.bed.testbed("heal", i, j, check=False)
