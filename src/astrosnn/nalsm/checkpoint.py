"""Progress of a long `astrosnn nalsm train` run, so that an interrupted run can resume.

Layout of ``OUT/checkpoint/`` (all written atomically, no pickle):

- ``state.json``: the run's fingerprint (config, dataset, split sizes), the timings so far, and for each split the
  feature chunks written so far;
- ``config.json``, ``model.json``, ``liquid.safetensors``: the liquid after phase 1 (:meth:`NALSM.save`);
- ``<split>-<start>.safetensors``: phase-2 spike counts of samples ``[start, start + n)`` of a split.

Phase-2 batches are independent (each starts from the phase-1 weights and is encoded with its own seed), so
features computed in pieces equal features computed in one go. Phase 1 is not split: an interrupted phase 1
starts again.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from astrosnn.errors import AstrosnnError
from astrosnn.nalsm.model import NALSM
from astrosnn.runinfo import atomic_write_json, load_json, load_tensors, save_tensors

FORMAT = "astrosnn-nalsm-run-checkpoint-1"
STATE = "state.json"


def _differences(saved: Any, given: Any, prefix: str = "") -> list[str]:
    """Dotted keys where two JSON-like values differ."""
    if isinstance(saved, dict) and isinstance(given, dict):
        out: list[str] = []
        for key in sorted(set(saved) | set(given)):
            out += _differences(saved.get(key), given.get(key), f"{prefix}{key}.")
        return out
    return [] if saved == given else [prefix.rstrip(".")]


class CheckpointExists(AstrosnnError):
    """A fresh run would overwrite the checkpoint of an interrupted one."""

    def __init__(self, folder: Path, how: str = "resume it (resume=True)"):
        super().__init__(f"{folder} holds the checkpoint of an interrupted run: {how}, or delete that folder "
                         "to start over")
        self.folder = folder


class RunCheckpoint:
    """The checkpoint folder of one run, identified by a JSON-able ``fingerprint``."""

    def __init__(self, folder: str | Path, fingerprint: dict[str, Any]):
        self.folder = Path(folder)
        self.fingerprint = json.loads(json.dumps(fingerprint, default=str))  # as state.json reads back
        self.state: dict[str, Any] = {"format": FORMAT, "fingerprint": self.fingerprint, "phase1_done": False,
                                      "timings": {}, "chunks": {}}  # fmt: skip

    @classmethod
    def fresh(cls, folder: str | Path, fingerprint: dict[str, Any]) -> RunCheckpoint:
        """A new checkpoint; refuses to overwrite the checkpoint of an interrupted run (hours of work)."""
        folder = Path(folder)
        if (folder / STATE).is_file():
            raise CheckpointExists(folder)
        ckpt = cls(folder, fingerprint)
        ckpt.remove()  # leftovers without a state file
        return ckpt

    @classmethod
    def resume(cls, folder: str | Path, fingerprint: dict[str, Any]) -> RunCheckpoint:
        """The checkpoint in ``folder``; a clear error when there is none or it belongs to another run."""
        folder = Path(folder)
        if not (folder / STATE).is_file():
            raise AstrosnnError(f"cannot resume: no checkpoint in {folder} ({STATE} missing)")
        state = load_json(folder / STATE)
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise AstrosnnError(f"{folder / STATE}: not an astrosnn NALSM run checkpoint")
        ckpt = cls(folder, fingerprint)
        diff = _differences(state.get("fingerprint"), ckpt.fingerprint)
        if diff:
            raise AstrosnnError(f"cannot resume: the checkpoint in {folder} is of a run with other settings "
                                f"({', '.join(diff[:5])}); use the same options, or delete that folder to start over")  # fmt: skip
        ckpt.state = state
        return ckpt

    # ------------------------------------------------------------------ phase 1
    @property
    def phase1_done(self) -> bool:
        return bool(self.state["phase1_done"])

    def save_liquid(self, model: NALSM) -> None:
        """The liquid after phase 1 (topology, weights, rate code maximum)."""
        model.save(self.folder)
        self.state["phase1_done"] = True
        self.state["timings"]["phase1_s"] = model.timings.get("phase1_s", 0.0)
        self.state["phase1_samples"] = model.counts.get("phase1_samples", 0)
        self._write_state()

    def load_liquid(self, model: NALSM) -> None:
        """Put the saved phase-1 liquid into ``model`` (a fresh NALSM with the run's config)."""
        saved = NALSM.load(self.folder, backend=model.backend)
        model.network, model.weights = saved.network, saved.weights
        model.n_inputs, model.input_kind, model.rate_max = saved.n_inputs, saved.input_kind, saved.rate_max
        model.timings["phase1_s"] = self.state["timings"].get("phase1_s", 0.0)
        model.counts["phase1_samples"] = self.state.get("phase1_samples", 0)

    # ------------------------------------------------------------------ phase 2
    def chunks(self, split: str) -> tuple[list[np.ndarray], int]:
        """The saved feature chunks of ``split`` in order, and the first sample not yet computed."""
        parts, next_start = [], 0
        for start, n in self.state["chunks"].get(split, []):
            if start != next_start:
                raise AstrosnnError(f"{self.folder / STATE}: chunks of {split!r} are not contiguous")
            path = self.folder / f"{split}-{start:08d}.safetensors"
            counts = load_tensors(path).get("counts")
            if counts is None or counts.shape[0] != n:
                raise AstrosnnError(f"{path}: expected {n} feature rows")
            parts.append(counts.numpy().astype(np.float32))
            next_start = start + n
        return parts, next_start

    def save_chunk(self, split: str, start: int, counts: np.ndarray, seconds: float) -> None:
        """Spike counts of samples ``[start, start + len(counts))``; ``seconds`` spent computing them."""
        whole = counts.size == 0 or (np.all(counts == np.round(counts)) and 0 <= counts.min() and counts.max() < 2**15)
        stored = torch.from_numpy(counts.astype(np.int16 if whole else np.float32))
        save_tensors(self.folder / f"{split}-{start:08d}.safetensors", {"counts": stored})
        self.state["chunks"].setdefault(split, []).append([int(start), int(len(counts))])
        key = f"phase2_{split}_s"
        self.state["timings"][key] = self.state["timings"].get(key, 0.0) + seconds
        self._write_state()

    def seconds(self, key: str) -> float:
        return float(self.state["timings"].get(key, 0.0))

    # ------------------------------------------------------------------
    def _write_state(self) -> None:
        atomic_write_json(self.folder / STATE, self.state)

    def remove(self) -> None:
        if self.folder.exists():
            shutil.rmtree(self.folder)


def checkpointed_features(model: NALSM, X: Any, split: str, ckpt: RunCheckpoint, every: int) -> np.ndarray:
    """Phase-2 features of ``X`` (as :meth:`NALSM.transform` with ``salt=split``), saved to ``ckpt`` every
    ``every`` batches and continued from what it already holds. Sets ``model.timings[f"phase2_{split}_s"]``."""
    parts, first = ckpt.chunks(split)
    pending: list[np.ndarray] = []
    chunk_start, t0 = first, time.perf_counter()
    for result in model.simulate(X, salt=split, desc=f"phase 2 ({split})", first=first):
        pending.append(result.counts.numpy().astype(np.float32))
        done = chunk_start + sum(len(p) for p in pending)
        if len(pending) == every or done == len(X):
            counts = np.concatenate(pending)
            ckpt.save_chunk(split, chunk_start, counts, time.perf_counter() - t0)
            parts.append(counts)
            pending, chunk_start, t0 = [], done, time.perf_counter()
    model.timings[f"phase2_{split}_s"] = ckpt.seconds(f"phase2_{split}_s")
    model.counts[f"phase2_{split}_samples"] = len(X)
    return np.concatenate(parts) if parts else np.zeros((0, model.network.n_liquid), np.float32)
