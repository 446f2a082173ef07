"""The statistics and verdicts of benchmarks/everyday.py, on synthetic rounds (nothing timed).

The quartiles are checked against NumPy's linear-interpolation percentiles, an independent
definition of the same quantity; the verdicts against the rule the script documents (pass
or fail by the median, inconclusive when the rounds' spread is wider than the margin to the
target).
"""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def everyday():
    sys.path.insert(0, str(BENCHMARKS))  # the script imports its sibling _publish
    try:
        spec = importlib.util.spec_from_file_location("everyday", BENCHMARKS / "everyday.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["everyday"] = module  # its dataclass looks its module up
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("everyday", None)
        sys.path.remove(str(BENCHMARKS))


def rounds(pairs, load=0.5):
    """Synthetic rounds from (command seconds, inference seconds) pairs."""
    return [{"command_s": a, "inference_s": b, "ratio": a / b, "load_before": load,
             "load_after": load + 0.1} for a, b in pairs]


@pytest.mark.parametrize("values", [[2.0, 2.1, 2.4], [1.0, 5.0, 2.0, 3.0, 4.0, 9.0, 2.5],
                                    [3.3, 3.1]])
def test_quartiles_are_numpys_linear_percentiles(everyday, values):
    assert everyday.quartiles(values) == pytest.approx(np.percentile(values, [25, 50, 75]))


def test_one_round_is_its_own_quartiles(everyday):
    assert everyday.quartiles([2.5]) == (2.5, 2.5, 2.5)
    with pytest.raises(ValueError):
        everyday.quartiles([])


def test_tight_rounds_below_the_target_pass(everyday):
    s = everyday.summarize([1.9, 2.0, 2.05, 2.1, 2.0], target=3.0)
    assert (s["verdict"], s["pass"], s["median"]) == ("pass", True, 2.0)
    assert s["margin"] == pytest.approx(1.0) and s["spread"] == pytest.approx(2.05 - 2.0)


def test_tight_rounds_above_the_target_fail(everyday):
    s = everyday.summarize([3.5, 3.6, 3.55], target=3.0)
    assert (s["verdict"], s["pass"]) == ("fail", False)


def test_spread_across_the_target_is_inconclusive(everyday):
    s = everyday.summarize([2.6, 2.8, 2.9, 3.2, 3.4], target=3.0)
    assert s["q1"] < 3.0 < s["q3"]
    assert (s["verdict"], s["pass"]) == ("inconclusive", False)


def test_spread_wider_than_the_margin_is_inconclusive_even_below_the_target(everyday):
    # median 2.7, quartiles 2.5-2.95: all below 3, but the spread (0.45) exceeds the margin
    s = everyday.summarize([2.3, 2.5, 2.7, 2.95, 2.98], target=3.0)
    assert s["q3"] < 3.0 and s["spread"] > s["margin"]
    assert s["verdict"] == "inconclusive"
    # the same spread far from the target is a verdict
    assert everyday.summarize([1.3, 1.5, 1.7, 1.95, 1.98], target=3.0)["verdict"] == "pass"


def test_pairing_cancels_a_machine_that_slows_down(everyday):
    # the machine halves its speed after two rounds: both halves of a round slow together,
    # so every round's ratio is 2 and the verdict is clean
    row = everyday.row_summary(rounds([(2, 1), (2, 1), (4, 2), (4, 2), (4, 2)]), target=2.5)
    assert (row["median"], row["spread"], row["verdict"]) == (2.0, 0.0, "pass")
    assert (row["command_s"], row["inference_s"]) == (4, 2)
    assert row["load"] == [0.5, 0.6] and len(row["rounds"]) == 5


def test_a_quick_run_of_three_rounds_gets_a_verdict(everyday):
    row = everyday.row_summary(rounds([(4.2, 1.0), (4.0, 1.0), (4.4, 1.0)]), target=5.0)
    assert row["median"] == pytest.approx(4.2) and row["verdict"] == "pass"
    row = everyday.row_summary(rounds([(4.2, 1.0), (6.0, 1.0), (3.0, 1.0)]), target=5.0)
    assert row["verdict"] == "inconclusive"


def test_change_against_the_previous_run(everyday):
    now = {"eval_warm": {"median": 2.2}, "upscale_1": {"median": 3.0}}
    before = {"rows": {"eval_warm": {"median": 2.0}}}
    assert everyday.vs_previous(now, before) == {"eval_warm": pytest.approx(0.1)}
    assert everyday.vs_previous(now, {"commands": {}}) == {}


def test_readme_table_shows_spread_load_and_verdict(everyday):
    rows = {"eval_warm": everyday.row_summary(rounds([(2.6, 1), (2.8, 1), (3.3, 1)], 2.0),
                                              target=3.0)}
    result = {"rows": rows, "labels": {"eval_warm": "warm eval"},
              "measured_under": {"date": "2026-12-04T10:00:00+00:00", "cpus": 2}}
    table = everyday.readme_table(result)
    assert "| warm eval | 3 | 2.80 s | 1.00 s | 2.80x [2.70-3.05] | <= 3x | inconclusive | " \
           "2-2.1 |" in table
    assert "busy machine" in table


def test_skip_takes_rows_and_groups(everyday):
    assert everyday.selected("") == list(everyday.ROW_NAMES)
    assert everyday.selected("report,upscale") == ["eval_cold", "eval_warm"]
    assert everyday.selected("eval_cold") == ["eval_warm", "upscale_4", "upscale_1", "report"]
    with pytest.raises(SystemExit):
        everyday.selected("evals")
