"""Progress of a long `astrosnn nalsm train` run, so that an interrupted run can resume.

Layout of ``OUT/checkpoint/`` (all written atomically: a temporary file, then a rename; no pickle):

- ``state.json``: the run's fingerprint (config, dataset, split sizes), the timings so far, phase-1 progress,
  for each split the feature chunks written so far, and the sha256 of every file below (checked on resume);
- ``phase1-<done>.safetensors``: while phase 1 runs, the weights (S,) and STDP traces (N + n_in,) after its
  first ``done`` samples (everything that crosses a sample boundary: the neuron, astrocyte and rate state are
  reset per sample), every ``phase1_every`` samples;
- ``config.json``, ``model.json``, ``liquid.safetensors``: the liquid after phase 1 (:meth:`NALSM.save`);
- ``<split>-<start>.safetensors``: phase-2 spike counts of samples ``[start, start + n)`` of a split (and, with
  carried traces, the final traces of the chunk's last batch).

Phase 1 resumes from its last piece with bit-identical final weights (the pieces chain weights and traces,
and sample i is encoded the same whichever piece runs it). Phase-2 batches are independent (each starts
from the phase-1 weights and is encoded with its own seed), so features computed in pieces equal features
computed in one go; with carried traces the saved traces continue the chain.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from astrosnn.errors import AstrosnnError
from astrosnn.nalsm.model import NALSM, Phase1Progress
from astrosnn.runinfo import atomic_write_json, load_json, load_tensors, save_tensors

FORMAT = "astrosnn-nalsm-run-checkpoint-2"
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
                                      "timings": {}, "chunks": {}, "phase1": None, "files": {},
                                      "elapsed_s": 0.0}  # fmt: skip
        self._since = time.perf_counter()  # this process's time not yet in elapsed_s

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
            raise AstrosnnError(f"{folder / STATE}: not an astrosnn NALSM run checkpoint (or of an older version)")
        _check_state(state, folder / STATE)
        ckpt = cls(folder, fingerprint)
        diff = _differences(state.get("fingerprint"), ckpt.fingerprint)
        if diff:
            raise AstrosnnError(f"cannot resume: the checkpoint in {folder} is of a run with other settings "
                                f"({', '.join(diff[:5])}); use the same options, or delete that folder to start over")  # fmt: skip
        ckpt.state = state
        return ckpt

    # ------------------------------------------------------------------ files
    def _record(self, name: str) -> None:
        self.state["files"][name] = sha256_file(self.folder / name)

    def _verified(self, name: str) -> Path:
        """``folder/name`` after checking it against the sha256 recorded in state.json."""
        if not isinstance(name, str) or "/" in name or "\\" in name or name.startswith("."):
            raise AstrosnnError(f"{self.folder / STATE}: invalid file name {name!r}")
        path = self.folder / name
        expected = self.state["files"].get(name)
        if expected is None:
            raise AstrosnnError(f"{self.folder / STATE}: no checksum recorded for {name}")
        if not path.is_file():
            raise AstrosnnError(f"{path}: missing from the checkpoint")
        if sha256_file(path) != expected:
            raise AstrosnnError(f"{path}: content does not match its checksum in {STATE} (corrupted or replaced)")
        return path

    # ------------------------------------------------------------------ phase 1
    @property
    def phase1_done(self) -> bool:
        return bool(self.state["phase1_done"])

    def save_phase1_progress(self, progress: Phase1Progress) -> None:
        """Weights and traces after the first ``progress.done`` phase-1 samples (replaces the previous piece)."""
        old = self.state.get("phase1")
        name = f"phase1-{progress.done:08d}.safetensors"
        save_tensors(self.folder / name, {"weights": progress.weights.detach().to(torch.float32),
                                          "traces": progress.traces.detach().to(torch.float32)})
        self._record(name)
        self.state["phase1"] = {"done": int(progress.done), "seconds": float(progress.seconds), "file": name}
        self._write_state()
        if old and old.get("file") != name:
            (self.folder / old["file"]).unlink(missing_ok=True)
            self.state["files"].pop(old["file"], None)

    def phase1_progress(self, model: NALSM) -> Phase1Progress | None:
        """The saved phase-1 piece, checked against ``model``'s (built) network; None if there is none."""
        info = self.state.get("phase1")
        if not info:
            return None
        path = self._verified(info["file"])
        t = load_tensors(path)
        net = model.network
        expected = {"weights": (net.n_synapses,), "traces": (net.n_neurons,)}
        for key, shape in expected.items():
            if key not in t or tuple(t[key].shape) != shape or t[key].dtype != torch.float32:
                raise AstrosnnError(f"{path}: {key} must be float32 of shape {shape} for this run's liquid")
            if not bool(torch.isfinite(t[key]).all()):
                raise AstrosnnError(f"{path}: {key} contain NaN or infinite values")
        done = info["done"]
        if not isinstance(done, int) or not 0 < done <= model.config.protocol.phase1_samples:
            raise AstrosnnError(f"{self.folder / STATE}: phase-1 progress {done!r} out of range")
        return Phase1Progress(done, t["weights"], t["traces"], float(info.get("seconds", 0.0)))

    def save_liquid(self, model: NALSM) -> None:
        """The liquid after phase 1 (topology, weights, rate code maximum)."""
        model.save(self.folder)
        for name in LIQUID_FILES:
            self._record(name)
        self.state["phase1_done"] = True
        self.state["timings"]["phase1_s"] = model.timings.get("phase1_s", 0.0)
        self.state["phase1_samples"] = model.counts.get("phase1_samples", 0)
        old, self.state["phase1"] = self.state.get("phase1"), None
        self._write_state()
        if old:
            (self.folder / old["file"]).unlink(missing_ok=True)
            self.state["files"].pop(old["file"], None)

    def load_liquid(self, model: NALSM) -> None:
        """Put the saved phase-1 liquid into ``model`` (a fresh NALSM with the run's config)."""
        for name in LIQUID_FILES:
            self._verified(name)
        saved = NALSM.load(self.folder, backend=model.backend)
        if saved.config.to_dict() != model.config.to_dict():
            diff = _differences(saved.config.to_dict(), model.config.to_dict())
            raise AstrosnnError(f"{self.folder / 'config.json'}: the saved liquid is of another run "
                                f"({', '.join(diff[:5])})")
        model.network, model.weights = saved.network, saved.weights
        model.n_inputs, model.input_kind, model.rate_max = saved.n_inputs, saved.input_kind, saved.rate_max
        model.timings["phase1_s"] = self.state["timings"].get("phase1_s", 0.0)
        model.counts["phase1_samples"] = self.state.get("phase1_samples", 0)

    # ------------------------------------------------------------------ phase 2
    def chunks(self, split: str, n_liquid: int, *, with_traces: bool = False
               ) -> tuple[list[np.ndarray], int, torch.Tensor | None]:
        """The saved feature chunks of ``split`` in order, the first sample not yet computed, and (with
        ``with_traces``) the traces saved with the last chunk."""
        parts, next_start, traces = [], 0, None
        for entry in self.state["chunks"].get(split, []):
            start, n = entry
            if start != next_start:
                raise AstrosnnError(f"{self.folder / STATE}: chunks of {split!r} are not contiguous")
            path = self._verified(f"{split}-{start:08d}.safetensors")
            t = load_tensors(path)
            parts.append(_checked_counts(t.get("counts"), n, n_liquid, path))
            if with_traces:
                traces = t.get("traces")
                if traces is None or traces.dim() != 2 or not bool(torch.isfinite(traces).all()):
                    raise AstrosnnError(f"{path}: no valid phase-2 traces (was this run made with reset traces?)")
            next_start = start + n
        return parts, next_start, traces

    def save_chunk(self, split: str, start: int, counts: np.ndarray, seconds: float,
                   traces: torch.Tensor | None = None) -> None:
        """Spike counts of samples ``[start, start + len(counts))``; ``seconds`` spent computing them."""
        whole = counts.size == 0 or (np.all(counts == np.round(counts)) and 0 <= counts.min() and counts.max() < 2**15)
        tensors = {"counts": torch.from_numpy(counts.astype(np.int16 if whole else np.float32))}
        if traces is not None:
            tensors["traces"] = traces.detach().to(torch.float32)
        name = f"{split}-{start:08d}.safetensors"
        save_tensors(self.folder / name, tensors)
        self._record(name)
        self.state["chunks"].setdefault(split, []).append([int(start), int(len(counts))])
        key = f"phase2_{split}_s"
        self.state["timings"][key] = self.state["timings"].get(key, 0.0) + seconds
        self._write_state()

    def seconds(self, key: str) -> float:
        return float(self.state["timings"].get(key, 0.0))

    @property
    def elapsed(self) -> float:
        """Wall time of the run so far: earlier processes (up to their last checkpoint) plus this one."""
        return float(self.state.get("elapsed_s", 0.0)) + time.perf_counter() - self._since

    # ------------------------------------------------------------------
    def _write_state(self) -> None:
        now = time.perf_counter()
        self.state["elapsed_s"] = float(self.state.get("elapsed_s", 0.0)) + now - self._since
        self._since = now
        atomic_write_json(self.folder / STATE, self.state)

    def remove(self) -> None:
        if self.folder.exists():
            shutil.rmtree(self.folder)


LIQUID_FILES = ("config.json", "model.json", "liquid.safetensors", "liquid.json")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _check_state(state: dict[str, Any], path: Path) -> None:
    """The structure of a state.json read back (a damaged one is refused in one line, not a traceback)."""
    ok = (isinstance(state.get("chunks"), dict) and isinstance(state.get("files"), dict)
          and isinstance(state.get("timings"), dict) and isinstance(state.get("phase1_done"), bool)
          and all(isinstance(v, str) for v in state["files"].values())
          and all(isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v) and v >= 0
                  for v in [*state["timings"].values(), state.get("elapsed_s", 0.0)])
          and all(isinstance(c, list) and all(isinstance(e, list) and len(e) == 2
                                              and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0
                                                      for i in e) for e in c)
                  for c in state["chunks"].values()))
    p1 = state.get("phase1")
    ok = ok and (p1 is None or (isinstance(p1, dict) and isinstance(p1.get("file"), str)
                                and isinstance(p1.get("seconds", 0.0), int | float)))
    if not ok:
        raise AstrosnnError(f"{path}: malformed checkpoint state")


def _checked_counts(counts: torch.Tensor | None, n: int, n_liquid: int, path: Path) -> np.ndarray:
    """Spike counts read back: (n, n_liquid), whole, finite and non-negative; float32."""
    if counts is None or counts.dim() != 2 or tuple(counts.shape) != (n, n_liquid):
        raise AstrosnnError(f"{path}: expected counts of shape ({n}, {n_liquid}), got "
                            f"{None if counts is None else tuple(counts.shape)}")
    if counts.dtype not in (torch.int16, torch.float32):
        raise AstrosnnError(f"{path}: counts have dtype {counts.dtype}, expected int16 or float32")
    arr = counts.numpy().astype(np.float32)
    if not np.all(np.isfinite(arr)) or (arr.size and arr.min() < 0) or not np.all(arr == np.round(arr)):
        raise AstrosnnError(f"{path}: counts must be finite non-negative whole numbers")
    return arr


def checkpointed_features(model: NALSM, X: Any, split: str, ckpt: RunCheckpoint, every: int, *,
                          traces: str = "reset", shard: Any = None) -> np.ndarray | None:
    """Phase-2 features of ``X`` (as :meth:`NALSM.transform` with ``salt=split``), saved to ``ckpt`` every
    ``every`` batches and continued from what it already holds. Sets ``model.timings[f"phase2_{split}_s"]``.

    traces: "reset" or "carry" (see `NALSM.simulate`). shard: a `astrosnn.nalsm.shard.Shard` to split the
    batches over processes: each computes its share of every chunk, rank 0 gathers them in order, saves the
    chunk and returns the features; the other ranks return None."""
    n_liquid = model.network.n_liquid
    carry = traces == "carry"
    if shard is not None and shard.size > 1:
        return _sharded_features(model, X, split, ckpt, every, shard)
    parts, first, carried = ckpt.chunks(split, n_liquid, with_traces=carry)
    pending: list[np.ndarray] = []
    chunk_start, t0 = first, time.perf_counter()
    for result in model.simulate(X, salt=split, desc=f"phase 2 ({split})", first=first, traces=traces,
                                 initial_traces=carried):
        pending.append(result.counts.numpy().astype(np.float32))
        done = chunk_start + sum(len(p) for p in pending)
        if len(pending) == every or done == len(X):
            counts = np.concatenate(pending)
            extra = {"traces": result.traces} if carry else {}
            ckpt.save_chunk(split, chunk_start, counts, time.perf_counter() - t0, **extra)
            parts.append(counts)
            pending, chunk_start, t0 = [], done, time.perf_counter()
    model.timings[f"phase2_{split}_s"] = ckpt.seconds(f"phase2_{split}_s")
    model.counts[f"phase2_{split}_samples"] = len(X)
    return np.concatenate(parts) if parts else np.zeros((0, n_liquid), np.float32)


def _sharded_features(model: NALSM, X: Any, split: str, ckpt: RunCheckpoint | None, every: int,
                      shard: Any) -> np.ndarray | None:
    n_liquid, bs = model.network.n_liquid, model.config.protocol.batch_size
    parts, first = [], 0
    if shard.rank == 0:
        parts, first, _ = ckpt.chunks(split, n_liquid)
    first = shard.broadcast(first)
    starts = list(range(first, len(X), bs))
    step = every * shard.size  # batches per checkpoint chunk: `every` per process
    old_progress = model.progress
    model.progress = False  # one bar (rank 0's) over the whole split instead of one per chunk
    bar = tqdm(total=len(X), initial=first, desc=f"phase 2 ({split}, {shard.size} processes)", unit="sample",
               disable=not (old_progress and shard.rank == 0), leave=False)
    try:
        for c in range(0, len(starts), step):
            chunk = starts[c:c + step]
            t0 = time.perf_counter()
            mine = chunk[shard.rank::shard.size]
            counts = [r.counts.numpy().astype(np.float32)
                      for r in model.simulate(X, salt=split, desc=f"phase 2 ({split})", starts=mine)]
            gathered = shard.gather(counts)
            if shard.rank == 0:
                ordered = [gathered[i % shard.size][i // shard.size] for i in range(len(chunk))]
                block = np.concatenate(ordered)
                ckpt.save_chunk(split, chunk[0], block, time.perf_counter() - t0)
                parts.append(block)
            bar.update(min(len(X), chunk[-1] + bs) - chunk[0])
    finally:
        bar.close()
        model.progress = old_progress
    if shard.rank != 0:
        return None
    model.timings[f"phase2_{split}_s"] = ckpt.seconds(f"phase2_{split}_s")
    model.counts[f"phase2_{split}_samples"] = len(X)
    return np.concatenate(parts) if parts else np.zeros((0, n_liquid), np.float32)
