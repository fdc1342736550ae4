import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from chaos import checker  # noqa: E402


def op(i, f, unit, arg, invoke, complete, outcome="ok", result="ok"):
    return {"id": i, "process": 0, "machine": 1, "f": f, "unit": unit, "arg": arg, "invoke": invoke,
            "complete": complete, "outcome": outcome, "result": result, "status": None, "error": None}


class DoubleRunTests(unittest.TestCase):
    def test_an_overlap_is_measured_from_the_first_pass_showing_two_machines_to_the_first_showing_one(self):
        samples = [
            (0.0, {"1": {"u": "10"}, "2": {}}),
            (0.1, {"1": {"u": "10"}, "2": {"u": "20"}}),
            (0.2, {"1": {"u": "10"}, "2": {"u": "20"}}),
            (0.3, {"1": {}, "2": {"u": "20"}}),
        ]
        found = checker.double_runs(samples)
        self.assertEqual(len(found), 1)
        self.assertEqual(found[0]["machines"], [1, 2])
        self.assertEqual(found[0]["overlap_ms"], 200)

    def test_a_machine_not_read_in_a_pass_counts_as_nothing_seen_and_global_units_are_left_out(self):
        samples = [(0.0, {"1": {"u": "1", "g": "2"}, "2": None, "3": {"g": "3"}})]
        self.assertEqual(checker.double_runs(samples, global_units={"g"}), [])
        self.assertEqual(len(checker.double_runs(samples)), 1)

    def test_an_overlap_still_open_at_the_end_is_reported_as_such(self):
        samples = [(0.0, {"1": {"u": "1"}, "2": {"u": "2"}}), (0.5, {"1": {"u": "1"}, "2": {"u": "2"}})]
        found = checker.double_runs(samples)
        self.assertTrue(found[0].get("still_open"))


class InterruptionTests(unittest.TestCase):
    samples = [
        (0.0, {"1": {"u": "10", "v": "11"}, "2": {"w": "12"}}),
        (1.0, {"1": {"u": "10", "v": "11"}, "2": {"w": "12"}}),
        (2.0, {"1": {"u": "13", "v": "11"}, "2": {}}),  # u restarted on 1, w stopped on 2
        (3.0, {"1": None, "2": {}}),  # 1 not read: no claim about it
        (4.0, {"1": {}, "2": {}}),
    ]

    def test_changes_between_two_passes_of_a_machine_are_found(self):
        found = {(i["unit"], i["machine"], i["time"]) for i in checker.interruptions(self.samples)}
        self.assertEqual(found, {("u", 1, 2.0), ("w", 2, 2.0)})

    def test_a_write_to_the_unit_or_a_fault_on_its_machine_explains_it_and_nothing_else_does(self):
        history = [op(1, "replace", "u", "t1", 1.5, 1.6)]
        events = [{"start": 1.2, "end": 1.8, "kind": "isolate", "machines": [2]}]
        self.assertEqual(checker.unexplained_interruptions(self.samples, history, events, 10.0, settle_s=1.0), [])
        # The fault was on the other machine, the write to another unit: both unexplained.
        history = [op(1, "replace", "v", "t1", 1.5, 1.6)]
        events = [{"start": 1.2, "end": 1.8, "kind": "isolate", "machines": [1]}]
        left = checker.unexplained_interruptions(self.samples, history, events, 10.0, settle_s=0.5)
        self.assertEqual({(i["unit"], i["machine"]) for i in left}, {("w", 2)})
        # The settling time is a bound: past it, the fault no longer explains anything.
        left = checker.unexplained_interruptions(self.samples, history, events, 10.0, settle_s=0.1)
        self.assertEqual({(i["unit"], i["machine"]) for i in left}, {("u", 1), ("w", 2)})
        left = checker.unexplained_interruptions(self.samples, [], [], 10.0, settle_s=0.1)
        self.assertEqual(len(left), 2)

    def test_only_a_write_that_can_stop_the_unit_explains_a_stop(self):
        history = [op(1, "target", "u", "launched", 1.5, 1.6), op(2, "target", "w", "launched", 1.5, 1.6)]
        self.assertEqual(len(checker.unexplained_interruptions(self.samples, history, [], 10.0, 1.0)), 2)
        for f, arg in (("target", "inactive"), ("target", "loaded"), ("destroy", None), ("replace", "t2"),
                       ("create", ["t2", "launched"])):
            history = [op(1, f, "u", arg, 1.5, 1.6), op(2, f, "w", arg, 1.5, 1.6)]
            self.assertEqual(checker.unexplained_interruptions(self.samples, history, [], 10.0, 1.0), [], f)

    def test_a_refused_write_explains_nothing_and_an_unknown_one_explains_until_the_end(self):
        refused = [op(1, "destroy", "w", None, 1.5, 1.6, outcome="fail", result=None)]
        self.assertEqual(len(checker.unexplained_interruptions(self.samples, refused, [], 10.0, 0.1)), 2)
        unknown = [op(1, "destroy", "w", None, 0.5, 0.6, outcome="unknown", result=None)]
        self.assertEqual(len(checker.unexplained_interruptions(self.samples, unknown, [], 10.0, 0.1)), 1)


class LostWriteTests(unittest.TestCase):
    def test_the_last_acknowledged_write_must_be_in_the_final_registry(self):
        history = [op(1, "create", "u", ["a", "launched"], 0, 1), op(2, "replace", "u", "b", 2, 3)]
        self.assertEqual(checker.lost_writes(history, {"u": ("b", "launched")}), [])
        lost = checker.lost_writes(history, {"u": ("a", "launched")})
        self.assertEqual([item["write"]["id"] for item in lost], [2])
        self.assertEqual(len(checker.lost_writes(history, {"u": None})), 1)

    def test_an_acknowledged_destroy_must_leave_the_unit_absent(self):
        history = [op(1, "create", "u", ["a", "launched"], 0, 1), op(2, "destroy", "u", None, 2, 3)]
        self.assertEqual(checker.lost_writes(history, {"u": None}), [])
        self.assertEqual(len(checker.lost_writes(history, {"u": ("a", "launched")})), 1)

    def test_a_later_or_unknown_write_may_have_replaced_it(self):
        history = [op(1, "create", "u", ["a", "launched"], 0, 5), op(2, "replace", "u", "b", 1, 2)]
        self.assertEqual(checker.lost_writes(history, {"u": ("b", "launched")}), [])
        history = [op(1, "create", "u", ["a", "launched"], 0, 1),
                   op(2, "destroy", "u", None, 0.5, None, outcome="unknown", result=None)]
        self.assertEqual(checker.lost_writes(history, {"u": None}), [])


class ConvergenceTests(unittest.TestCase):
    def test_launched_units_run_once_on_a_live_machine_and_the_others_nowhere(self):
        final = {"u": ("a", "launched"), "v": ("b", "loaded"), "w": None}
        self.assertTrue(checker.converged({"1": {"u": "1"}, "2": {}}, final, {1, 2}))
        self.assertFalse(checker.converged({"1": {"u": "1"}, "2": {"u": "2"}}, final, {1, 2}))
        self.assertFalse(checker.converged({"1": {}, "2": {}}, final, {1, 2}))
        self.assertFalse(checker.converged({"1": {"u": "1", "v": "3"}}, final, {1}))
        self.assertFalse(checker.converged({"1": {"u": "1"}}, final, {2}))
        self.assertFalse(checker.converged({"1": {"u": "1", "stray": "4"}}, final, {1}))


if __name__ == "__main__":
    unittest.main()
