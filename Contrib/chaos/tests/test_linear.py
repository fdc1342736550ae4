import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from chaos.linear import Op, check, step  # noqa: E402


class History:
    """Builds one unit's history: each call adds an operation with its interval."""

    def __init__(self):
        self.ops = []

    def add(self, f, arg, invoke, complete, result=None):
        op = Op(id=len(self.ops), f=f, arg=arg, invoke=invoke, complete=complete, result=result)
        self.ops.append(op)
        return op


class ModelTests(unittest.TestCase):
    def test_each_operation_on_an_absent_and_a_present_unit(self):
        self.assertEqual(step(None, "create", ("a", "launched")), (("a", "launched"), "ok"))
        self.assertEqual(step(None, "target", "launched"), (None, "conflict"))
        self.assertEqual(step(("a", "loaded"), "target", "launched"), (("a", "launched"), "ok"))
        self.assertEqual(step(None, "replace", "b"), (("b", "inactive"), "ok"))
        self.assertEqual(step(("a", "launched"), "replace", "b"), (("b", "launched"), "ok"))
        self.assertEqual(step(None, "destroy", None), (None, "absent"))
        self.assertEqual(step(("a", "loaded"), "destroy", None), (None, "ok"))
        self.assertEqual(step(("a", "loaded"), "read", None), (("a", "loaded"), ("a", "loaded")))
        with self.assertRaises(ValueError):
            step(None, "rename", None)


class SearchTests(unittest.TestCase):
    def test_a_sequential_history_is_linearizable(self):
        h = History()
        h.add("create", ("a", "launched"), 0, 1, "ok")
        h.add("read", None, 2, 3, ("a", "launched"))
        h.add("target", "inactive", 4, 5, "ok")
        h.add("read", None, 6, 7, ("a", "inactive"))
        h.add("destroy", None, 8, 9, "ok")
        h.add("read", None, 10, 11, None)
        h.add("target", "launched", 12, 13, "conflict")
        verdict = check(h.ops)
        self.assertTrue(verdict.linearizable)
        self.assertEqual(verdict.order, [0, 1, 2, 3, 4, 5, 6])

    def test_a_stale_read_after_a_newer_acknowledged_write_is_caught(self):
        h = History()
        h.add("create", ("a", "launched"), 0, 1, "ok")
        h.add("replace", "b", 2, 3, "ok")
        stale = h.add("read", None, 4, 5, ("a", "launched"))
        verdict = check(h.ops)
        self.assertFalse(verdict.linearizable)
        self.assertIs(verdict.stuck_at, stale)

    def test_a_read_concurrent_with_a_write_may_see_either_value_but_no_other(self):
        for seen, expected in ((("a", "launched"), True), (("b", "launched"), True), (("c", "launched"), False)):
            h = History()
            h.add("create", ("a", "launched"), 0, 1, "ok")
            h.add("replace", "b", 2, 6, "ok")
            h.add("read", None, 3, 4, seen)
            self.assertEqual(check(h.ops).linearizable, expected, seen)

    def test_reads_may_not_see_a_value_go_back(self):
        h = History()
        h.add("create", ("a", "launched"), 0, 1, "ok")
        h.add("replace", "b", 2, 10, "ok")
        h.add("read", None, 3, 4, ("b", "launched"))
        h.add("read", None, 5, 6, ("a", "launched"))
        self.assertFalse(check(h.ops).linearizable)

    def test_an_unknown_write_may_take_effect_late_or_never(self):
        base = History()
        base.add("create", ("a", "launched"), 0, 1, "ok")
        base.add("replace", "b", 2, None)  # timed out
        for reads, expected in (
            ([("a", "launched")], True),  # never applied (so far)
            ([("b", "launched")], True),  # applied
            ([("a", "launched"), ("b", "launched")], True),  # applied late, after the first read
            ([("b", "launched"), ("a", "launched")], False),  # applied, then undone by nothing
        ):
            h = History()
            h.ops = list(base.ops)
            t = 20
            for seen in reads:
                h.add("read", None, t, t + 1, seen)
                t += 10
            self.assertEqual(check(h.ops).linearizable, expected, reads)

    def test_an_acknowledged_write_missing_from_the_final_read_is_caught(self):
        h = History()
        h.add("create", ("a", "launched"), 0, 1, "ok")
        h.add("replace", "b", 2, 3, "ok")
        h.add("destroy", None, 4, None)  # unknown: may explain an absence, not an old file
        h.add("read", None, 100, 101, ("a", "launched"))
        self.assertFalse(check(h.ops).linearizable)
        h.ops[-1].result = None
        self.assertTrue(check(h.ops).linearizable)

    def test_results_of_definite_refusals_are_checked_too(self):
        h = History()
        h.add("create", ("a", "launched"), 0, 1, "ok")
        h.add("target", "launched", 2, 3, "conflict")  # says absent: it was not
        self.assertFalse(check(h.ops).linearizable)
        h = History()
        h.add("destroy", None, 0, 1, "ok")  # said deleted: there was nothing
        self.assertFalse(check(h.ops).linearizable)

    def test_unknown_reads_are_ignored(self):
        h = History()
        h.add("create", ("a", "launched"), 0, 1, "ok")
        h.add("read", None, 2, None, ("zzz", "launched"))
        self.assertTrue(check(h.ops).linearizable)
        self.assertEqual(check(h.ops).ops, 1)

    def test_the_budget_ends_a_search_without_a_verdict(self):
        h = History()
        for i in range(12):
            h.add("replace", f"t{i}", 0, None)
        h.add("read", None, 50, 51, ("nowhere", "inactive"))
        verdict = check(h.ops, budget=500)
        self.assertIsNone(verdict.linearizable)
        self.assertGreater(verdict.explored, 500)

    def test_many_concurrent_writers_stay_fast_when_linearizable(self):
        h = History()
        t = 0.0
        token = 0
        # 8 writers, overlapping windows, reads in between that see the last write by return.
        for round_ in range(40):
            for w in range(8):
                token += 1
                h.add("replace", f"v{token}", t + w * 0.1, t + 1 + w * 0.1, "ok")
            t += 2
            h.add("read", None, t, t + 0.1, (f"v{token}", "inactive"))
            t += 0.5
        verdict = check(h.ops)
        self.assertTrue(verdict.linearizable)
        self.assertLess(verdict.explored, 100_000)


if __name__ == "__main__":
    unittest.main()
