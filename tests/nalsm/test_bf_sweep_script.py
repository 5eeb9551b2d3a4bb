"""benchmarks/nalsm_bf_sweep.py: its resume log, read back or refused in one line."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from astrosnn.errors import AstrosnnError


def _sweep_module():
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "nalsm_bf_sweep.py"
    spec = importlib.util.spec_from_file_location("nalsm_bf_sweep", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_recorded_points_are_read_back_by_weight_seed_preset_and_dataset(tmp_path):
    sweep = _sweep_module()
    assert sweep.recorded_points(tmp_path / "points.jsonl") == {}
    rows = [{"w_astro": w, "seed": 0, "preset": "nalsm8000", "dataset": "mnist", "branching_factor": bf}
            for w, bf in ((0.001, 1.12), (0.002, 0.83))]
    (tmp_path / "points.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    done = sweep.recorded_points(tmp_path / "points.jsonl")
    assert done[(0.002, 0, "nalsm8000", "mnist")]["branching_factor"] == 0.83
    assert len(done) == 2


@pytest.mark.parametrize("bad_line", ['{"w_astro": 0.1', '{"seed": 0}', "[1, 2]"])
def test_a_damaged_log_line_is_named_in_one_line(tmp_path, capsys, bad_line):
    sweep = _sweep_module()
    good = json.dumps({"w_astro": 0.1, "seed": 0, "preset": "nalsm1000", "dataset": "mnist"})
    (tmp_path / "points.jsonl").write_text(good + "\n" + bad_line + "\n")
    with pytest.raises(AstrosnnError, match=r"points.jsonl line 2 is not a sweep point"):
        sweep.recorded_points(tmp_path / "points.jsonl")
    assert sweep.main(["--weights", "0.1", "--out", str(tmp_path)]) == 2  # refused before any data is loaded
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "line 2" in err and "\n" not in err
