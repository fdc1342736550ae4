"""Linearizability of one unit's history against a register model of the fleet v1 unit API.

The search is Wing and Gong's, with Lowe's memoisation of (linearized set, model state): it
looks for an order of the operations that respects real time (an operation that completed
before another was invoked comes first) and in which each acknowledged operation returns what
the model says. Operations whose outcome is unknown (a timeout, a lost connection, a 5xx) may
take effect at any time after their invocation, or never, so the search may leave them out.

Linearizability is local (Herlihy and Wing): a history is linearizable exactly when each
object's subhistory is, so the checker runs this once per unit. A `list` of all units is a
multi-object read; it is split into one read per unit, a weaker check than the whole read.
"""

from dataclasses import dataclass, field
from typing import Optional

INFINITY = float("inf")

# The model's state: None while the unit does not exist, else (token, target). `token` names
# the unit file: every file the workload writes carries a token of its own in an option.
TARGETS = ("inactive", "loaded", "launched")


def step(state, f, arg):
    """The model: (new state, result) of operation `f` with argument `arg` on `state`.

    Mirrors what PUT/GET/DELETE /fleet/v1/units/{name} do (Sources/HTTPAPI/UnitPutRules.swift):
    - create: options and desiredState; makes the unit, or replaces file and target of one.
    - target: desiredState only; 409 ("conflict") when the unit does not exist.
    - replace: options only; a new unit starts inactive, an existing one keeps its target.
    - destroy: 204, or 404 ("absent") when the unit does not exist.
    - read: the state itself (404 reads as None).
    """
    if f == "create":
        token, target = arg
        return (token, target), "ok"
    if f == "target":
        if state is None:
            return None, "conflict"
        return (state[0], arg), "ok"
    if f == "replace":
        if state is None:
            return (arg, "inactive"), "ok"
        return (arg, state[1]), "ok"
    if f == "destroy":
        if state is None:
            return None, "absent"
        return None, "ok"
    if f == "read":
        return state, state
    raise ValueError(f"unknown operation {f!r}")


@dataclass
class Op:
    """One operation on one unit. `complete` is None when the outcome is unknown."""

    id: int
    f: str
    arg: object
    invoke: float
    complete: Optional[float]
    result: object = None
    # For reports: the worker and the machine whose API was asked.
    process: int = 0
    machine: int = 0

    @property
    def known(self):
        return self.complete is not None


@dataclass
class Verdict:
    linearizable: Optional[bool]  # None: the search's budget ran out first
    explored: int
    ops: int
    unknown: int
    # When not linearizable: the longest prefix of ok operations any order could explain, and
    # the first acknowledged operation no order could place after it.
    stuck_at: Optional[Op] = None
    linearized_ok: int = 0
    order: list = field(default_factory=list)


def check(ops, initial=None, budget=2_000_000):
    """Searches for a linearization of `ops` (Op, any order) from `initial`."""
    ops = [op for op in ops if op.known or op.f != "read"]
    ops.sort(key=lambda op: op.invoke)
    n = len(ops)
    complete = [op.complete if op.known else INFINITY for op in ops]
    ok_indices = [i for i in range(n) if ops[i].known]
    by_return = sorted(ok_indices, key=lambda i: complete[i])
    goal = 0
    for i in ok_indices:
        goal |= 1 << i
    unknown = n - len(ok_indices)

    seen = set()
    # Depth-first; each frame is (mask, state, order) with order as a tuple-linked list.
    stack = [(0, initial, None)]
    explored = 0
    best = (-1, None)
    while stack:
        mask, state, order = stack.pop()
        if mask & goal == goal:
            return Verdict(True, explored, n, unknown, order=_unlink(order, ops))
        key = (mask, state)
        if key in seen:
            continue
        seen.add(key)
        explored += 1
        if explored > budget:
            return Verdict(None, explored, n, unknown)
        done_ok = bin(mask & goal).count("1")
        # The earliest return among acknowledged operations not yet placed: nothing invoked
        # after it may come before it.
        horizon = INFINITY
        first_pending = None
        for i in by_return:
            if not mask >> i & 1:
                horizon = complete[i]
                first_pending = i
                break
        if done_ok > best[0]:
            best = (done_ok, first_pending)
        candidates_known = []
        candidates_unknown = []
        for i in range(n):
            if ops[i].invoke > horizon:
                break
            if mask >> i & 1:
                continue
            new_state, result = step(state, ops[i].f, ops[i].arg)
            if ops[i].known:
                if result != ops[i].result:
                    continue
                candidates_known.append((mask | 1 << i, new_state, (i, order)))
            else:
                candidates_unknown.append((mask | 1 << i, new_state, (i, order)))
        # Popped last-in first: acknowledged operations are tried before unknown ones, which
        # finds a linearization of an ordinary history without wandering through the subsets
        # of its unknown operations.
        stack.extend(reversed(candidates_unknown))
        stack.extend(reversed(candidates_known))
    stuck = ops[best[1]] if best[1] is not None else None
    return Verdict(False, explored, n, unknown, stuck_at=stuck, linearized_ok=max(best[0], 0))


def _unlink(order, ops):
    out = []
    while order is not None:
        i, order = order
        out.append(ops[i].id)
    out.reverse()
    return out
