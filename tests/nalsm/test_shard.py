"""Phase 2 over two torchrun processes gives the features and metrics of one process (issue 13 §3)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import astrosnn
from astrosnn.cli import main
from astrosnn.errors import AstrosnnError
from astrosnn.nalsm.job import RunConfig, run
from astrosnn.nalsm.shard import Shard
from astrosnn.runinfo import load_tensors

TINY = ["--grid", "3x3x3", "--phase1-samples", "20", "--limit", "120", "--val-limit", "40", "--test-limit", "40",
        "--batch-size", "20", "--readout", "ridge", "--bf-samples", "2", "--quiet", "--no-plots",
        "--save-features", "--checkpoint-every", "1", "--threads", "1"]
DIFFERENT = {"wall_time_s", "samples_per_s", "processes", "command", "versions", "torch_threads"}


def _env() -> dict[str, str]:
    """The package this test imports, also for the child processes (PYTHONPATH=src or an installed copy)."""
    env = dict(os.environ)
    src = str(Path(astrosnn.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    env.setdefault("GLOO_SOCKET_IFNAME", "lo")
    env["OMP_NUM_THREADS"] = "1"
    return env


def test_two_processes_equal_one(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(["nalsm", "train", *TINY, "--out", str(one)]) == 0
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                          "-m", "astrosnn", "nalsm", "train", *TINY, "--out", str(two)],
                         env=_env(), timeout=180, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.count("test accuracy") == 1  # only rank 0 reports
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (one, two))
    assert (ma["processes"], mb["processes"]) == (1, 2)
    assert {k: v for k, v in ma.items() if k not in DIFFERENT} == {k: v for k, v in mb.items() if k not in DIFFERENT}
    fa, fb = (load_tensors(d / "features.safetensors") for d in (one, two))
    for key in fa:
        assert torch.equal(fa[key], fb[key]), key
    assert not (two / "checkpoint").exists()


def test_carried_traces_refuse_to_shard(tmp_path):
    with pytest.raises(AstrosnnError, match="cannot be split"):
        run(RunConfig(phase2_traces="carry"), tmp_path, shard=Shard(0, 2))
