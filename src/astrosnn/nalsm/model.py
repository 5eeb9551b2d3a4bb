"""Estimator-style NALSM / LSM / LSM+STDP (scikit-learn / reservoirpy idiom).

    model = NALSM.from_preset("nalsm1000")
    model.fit(X_train, y_train, X_val, y_val)     # phase 1 + phase-2 features + readout
    model.score(X_test, y_test); model.save("out/"); NALSM.load("out/")

Inputs X are one of: images (N, H, W) or intensities (N, D) -> NALSM's Bernoulli rate code (spec §2.1);
boolean spike trains (N, T, D); or a list of N-MNIST event arrays (fields x, y, p, t) -> 1-ms bins (§2.2).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from astrosnn.data.encoders import CHANNELS, bernoulli_spikes, bin_events, rate_probabilities
from astrosnn.errors import AstrosnnError
from astrosnn.nalsm.backends import AUTO, resolve_backend
from astrosnn.nalsm.branching import branching_factor_per_sample, mean_branching_factor
from astrosnn.nalsm.config import NALSMConfig
from astrosnn.nalsm.engine import extract_features, run_phase1, run_phase1_chunk
from astrosnn.nalsm.params import PlasticityConfig, SimulationResult
from astrosnn.nalsm.readout import Readout, train_readout
from astrosnn.nalsm.topology import Network, build_network
from astrosnn.runinfo import atomic_write_json, load_json, load_tensors, save_tensors, versions

MODEL_FORMAT = "astrosnn.nalsm.model/1"
TRACE_MODES = ("reset", "carry")  # phase-2 STDP traces between batches (NALSM.simulate)
# Phase-2 encoding salt of each split: a split's input spikes (and so its features) depend on it.
PHASE2_SALTS = {"train": "train", "validation": "val", "test": "test"}
EVENT_SPAN_MS = 300  # N-MNIST recordings; phase-1 windows start uniformly in [1, 278] as in the authors' code


def _input_kind(X: Any) -> str:
    if isinstance(X, list | tuple) and X and isinstance(X[0], np.ndarray) and X[0].dtype.names \
            and "t" in X[0].dtype.names:
        return "events"
    arr = X if isinstance(X, torch.Tensor) else np.asarray(X)
    if arr.ndim == 0 or len(arr) == 0:
        raise AstrosnnError(f"expected a non-empty batch of samples, got shape {tuple(arr.shape)}")
    if arr.dtype in (torch.bool, np.bool_):
        if arr.ndim != 3:
            raise AstrosnnError(f"spike trains must have shape (samples, time, inputs), got {tuple(arr.shape)}")
        return "spikes"
    if arr.ndim < 2:
        raise AstrosnnError(f"images must have shape (samples, ...), got {tuple(arr.shape)}")
    return "images"


def _n_inputs(X: Any, kind: str) -> int:
    if kind == "events":
        return CHANNELS
    arr = X if isinstance(X, torch.Tensor) else np.asarray(X)
    return int(arr.shape[2]) if kind == "spikes" else int(np.prod(arr.shape[1:]))


def _seed(*parts: Any) -> int:
    """A stable 63-bit seed from any parts (so every batch's encoding noise is reproducible)."""
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "little") >> 1


class _Phase1Samples(Sequence):
    """Lazily encoded phase-1 samples (T1, n_in): a seeded permutation of the training set, cycled.

    Images are encoded with a generator seeded by the sample's position; event / spike-train windows come
    from one sequential generator, replayed (draws only, no data) when a sample is asked out of order, so
    sample i is the same whether phase 1 runs in one go or resumes at i."""

    def __init__(self, model: NALSM, X: Any, kind: str, count: int):
        self.model, self.X, self.kind, self.count = model, X, kind, count
        n = len(X)
        rng = np.random.default_rng(_seed(model.config.seed, "phase1-order"))
        reps = -(-count // n) if n else 0
        self.order = np.concatenate([rng.permutation(n) for _ in range(reps)])[:count] if reps else []
        self._rewind()

    def _rewind(self) -> None:
        self.rng = np.random.default_rng(_seed(self.model.config.seed, "phase1-windows"))
        self._next = 0

    def _window(self, i: int) -> int:
        """Start of sample i's window (events, spikes): the i-th draw of the window generator."""
        if i < self._next:
            self._rewind()
        steps = self.model.config.protocol.phase1_ms
        while True:
            j = self._next
            if self.kind == "events":
                start = int(self.rng.integers(1, max(2, EVENT_SPAN_MS - steps - 1)))
            else:
                start = int(self.rng.integers(0, max(1, len(self.X[int(self.order[j])]) - steps + 1)))
            self._next += 1
            if j == i:
                return start

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self.count))]
        idx = int(self.order[i])
        steps = self.model.config.protocol.phase1_ms
        if self.kind == "events":
            return bin_events([self.X[idx]], steps=steps, start_ms=self._window(i))[0]
        if self.kind == "spikes":
            start = self._window(i)
            return torch.as_tensor(self.X[idx])[start:start + steps]
        gen = torch.Generator().manual_seed(_seed(self.model.config.seed, "phase1", i))
        return self.model._encode_images(self.X[idx:idx + 1], steps, gen)[0]

    def __iter__(self) -> Iterator[torch.Tensor]:
        for i in range(self.count):
            yield self[i]


@dataclass
class Phase1Progress:
    """Where a checkpointed phase 1 stands: samples done, the weights (S,) and STDP traces (N + n_in,) after
    them, and the seconds spent so far."""

    done: int
    weights: torch.Tensor
    traces: torch.Tensor
    seconds: float = 0.0


class NALSM:
    """A liquid (NALSM, LSM or LSM+STDP per `config.variant`) plus a linear readout.

    backend: engine backend name ("fast" when available, else "reference"; both give identical spikes).
    """

    def __init__(self, config: NALSMConfig | None = None, *, backend: str = AUTO, progress: bool = False):
        self.config = config or NALSMConfig()
        self.backend = resolve_backend(backend)
        self.progress = progress
        self.network: Network | None = None  # the topology with its initial weights
        self.weights: torch.Tensor | None = None  # (S,) liquid weights after phase 1
        self.readout: Readout | None = None
        self.n_inputs: int | None = None
        self.input_kind: str | None = None
        self.rate_max: float | None = None  # training set's global max of the rate code
        self.timings: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_preset(cls, name: str, n_inputs: int | None = None, *, backend: str = AUTO,
                    progress: bool = False, **changes: Any) -> NALSM:
        """A preset (`nalsm1000`, `nalsm8000`, `lsm1000`, `lsm-stdp1000`, ...); keyword changes use '__'
        for '.', e.g. ``NALSM.from_preset("nalsm1000", liquid__grid=(5, 5, 5), seed=2)``."""
        model = cls(NALSMConfig.from_preset(name, **changes), backend=backend, progress=progress)
        if n_inputs is not None:
            model.build(n_inputs)
        return model

    def build(self, n_inputs: int) -> NALSM:
        """Build the liquid topology for `n_inputs` input channels (seeded by config.seed)."""
        if isinstance(n_inputs, bool) or not isinstance(n_inputs, int | np.integer) or n_inputs < 1:
            raise AstrosnnError(f"n_inputs must be a positive integer, got {n_inputs!r}")
        lc = self.config.liquid
        t0 = time.perf_counter()
        self.network = build_network(
            lc.grid, int(n_inputs), self.config.seed, lam=lc.lam, c_ee=lc.c_ee, c_ei=lc.c_ei, c_ie=lc.c_ie,
            c_ii=lc.c_ii, input_density=lc.input_density, weight_magnitude=self.config.initial_weight)
        self.timings["build_s"] = time.perf_counter() - t0
        self.n_inputs = int(n_inputs)
        self.weights = torch.from_numpy(np.asarray(self.network.weight, dtype=np.float32)).clone()
        return self

    def plasticity(self, phase: int) -> PlasticityConfig:
        """The engine settings for phase 1 (no decay) or phase 2 (x phase2_decay per ms): the config's own
        plasticity section, whose rule and seed follow the variant and the run's seed."""
        p = self.config.plasticity.resolved(self.config.liquid.n_neurons)
        return p if phase == 1 else p.phase2()

    # ------------------------------------------------------------------ encoding
    def _encode_images(self, images: Any, steps: int, generator: torch.Generator) -> torch.Tensor:
        probs, _ = rate_probabilities(np.asarray(images), global_max=self.rate_max)
        return bernoulli_spikes(probs, steps, generator)

    def _encode(self, X: Any, kind: str, start: int, stop: int, salt: str) -> torch.Tensor:
        """Samples [start, stop) of X as bool spikes (B, phase2_ms, n_in)."""
        steps = self.config.protocol.phase2_ms
        if kind == "events":
            return bin_events(list(X[start:stop]), steps=steps)
        if kind == "spikes":
            x = torch.as_tensor(X[start:stop])
            if x.shape[1] < steps:
                raise AstrosnnError(f"spike trains have {x.shape[1]} steps; phase 2 needs {steps}")
            return x[:, :steps] != 0
        gen = torch.Generator().manual_seed(_seed(self.config.seed, salt, start))
        return self._encode_images(X[start:stop], steps, gen)

    def _check_input(self, X: Any) -> str:
        kind = _input_kind(X)
        if self.n_inputs is not None and _n_inputs(X, kind) != self.n_inputs:
            raise AstrosnnError(f"inputs have {_n_inputs(X, kind)} channels, the liquid was built for {self.n_inputs}")
        return kind

    # ------------------------------------------------------------------ phases
    def build_for(self, X: Any) -> NALSM:
        """Build the liquid for the inputs of X unless it is built."""
        if self.network is None:
            self.build(_n_inputs(X, _input_kind(X)))
        return self

    def initialize(self, X: Any, *, every: int | None = None, start: Phase1Progress | None = None,
                   on_chunk: Callable[[Phase1Progress], None] | None = None, phase1: bool = True) -> NALSM:
        """Build the liquid (if needed) and run phase 1 on `protocol.phase1_samples` random samples of X.

        every: run phase 1 in pieces of this many samples and call `on_chunk` with the progress after each
        (a run checkpoint saves it); start: continue from such a progress. Same weights either way.
        phase1=False: only build and take the rate code's maximum (the weights come from elsewhere)."""
        kind = _input_kind(X)
        self.build_for(X)
        self._check_input(X)
        self.input_kind = kind
        if kind == "images":
            _, self.rate_max = rate_probabilities(np.asarray(X))
        if not phase1:
            return self
        n1 = self.config.protocol.phase1_samples if self.config.rule != "none" else 0
        t0 = time.perf_counter()
        if start is None and (every is None or every >= n1):  # in one piece: the backend's sequence
            if n1 > 0:
                samples = _Phase1Samples(self, X, kind, n1)
                self.weights = run_phase1(self.network, samples, self.plasticity(1), weights=self.weights,
                                          progress=self.progress, backend=self.backend)
        elif n1 > 0:
            self._phase1_in_pieces(_Phase1Samples(self, X, kind, n1), every or n1, start, on_chunk)
            t0 = time.perf_counter() - self.timings["phase1_s"]
        self.timings["phase1_s"] = time.perf_counter() - t0
        self.counts["phase1_samples"] = n1
        return self

    def _phase1_in_pieces(self, samples: _Phase1Samples, every: int, start: Phase1Progress | None,
                          on_chunk: Callable[[Phase1Progress], None] | None) -> None:
        n1 = len(samples)
        if start is not None:
            if not 0 <= start.done <= n1:
                raise AstrosnnError(f"phase 1 cannot continue at sample {start.done} of {n1}")
            state = start
        else:
            state = Phase1Progress(0, self.weights, None)  # type: ignore[arg-type]
        p = self.plasticity(1)
        bar = tqdm(total=n1, initial=state.done, desc="phase 1", unit="sample", disable=not self.progress)
        try:
            while state.done < n1:
                t0 = time.perf_counter()
                stop = min(n1, state.done + every)
                w, x = run_phase1_chunk(self.network, (samples[i] for i in range(state.done, stop)), p,
                                        state.weights, state.traces, backend=self.backend)
                state = Phase1Progress(stop, w, x, state.seconds + time.perf_counter() - t0)
                bar.update(stop - bar.n)
                if on_chunk is not None:
                    on_chunk(state)
        finally:
            bar.close()
        self.weights = state.weights
        self.timings["phase1_s"] = state.seconds

    def _require(self, what: str = "liquid") -> None:
        if self.network is None or self.weights is None:
            raise AstrosnnError("the liquid is not initialised: call fit() or initialize() first")
        if what == "readout" and self.readout is None:
            raise AstrosnnError("the readout is not trained: call fit() first")

    def simulate(self, X: Any, *, record: bool = False, salt: str = "transform", desc: str = "phase 2",
                 first: int = 0, starts: Iterable[int] | None = None, traces: str = "reset",
                 initial_traces: torch.Tensor | None = None):
        """Phase 2 on the samples of X from `first` on, in batches; yields the engine's SimulationResult per batch.

        Batches are seeded by their first sample, so `first` (a multiple of the batch size) continues an
        interrupted pass with the same results, and `starts` (batch starts, any order) computes just those
        batches (one process's share of a sharded pass).

        traces: "reset" (astrosnn's default) starts every batch from zero STDP traces, so batches are
        independent; "carry" (the authors' loop, which resets everything but the traces) starts slot b of a
        batch from the final traces of slot b of the previous batch (`initial_traces`, (B, N + n_in), for
        the first one; default zeros), so features depend on the batch order."""
        self._require()
        kind = self._check_input(X)
        bs = self.config.protocol.batch_size
        if traces not in TRACE_MODES:
            raise AstrosnnError(f"traces must be one of {', '.join(TRACE_MODES)}, got {traces!r}")
        if first % bs or not 0 <= first <= len(X):
            raise AstrosnnError(f"phase 2 can only restart at a batch boundary: first={first}, batch size {bs}")
        todo = list(range(first, len(X), bs)) if starts is None else list(starts)
        if traces == "carry" and starts is not None:
            raise AstrosnnError("carried phase-2 traces need the batches in order (no sharding)")
        carried = initial_traces
        bar = tqdm(total=len(X), initial=first, desc=desc, unit="sample", disable=not self.progress, leave=False)
        try:
            for start in todo:
                if start % bs or not 0 <= start < len(X):
                    raise AstrosnnError(f"not a batch start: {start} (batch size {bs}, {len(X)} samples)")
                spikes = self._encode(X, kind, start, min(start + bs, len(X)), salt)
                x0 = carried[:spikes.shape[0]] if traces == "carry" and carried is not None else None
                result = extract_features(self.network, self.weights, spikes, self.plasticity(2),
                                          freeze=self.config.protocol.freeze_liquid, record=record,
                                          backend=self.backend, traces=x0)
                if traces == "carry":
                    carried = result.traces
                yield result
                bar.update(spikes.shape[0])
        finally:
            bar.close()

    def transform(self, X: Any, *, salt: str = "transform", desc: str = "phase 2") -> np.ndarray:
        """Liquid features: per-neuron spike counts over `phase2_ms` ms, float32 (samples, neurons)."""
        t0 = time.perf_counter()
        parts = [r.counts.numpy().astype(np.float32) for r in self.simulate(X, salt=salt, desc=desc)]
        self.timings["last_transform_s"] = time.perf_counter() - t0
        return np.concatenate(parts) if parts else np.zeros((0, self.network.n_liquid), np.float32)

    def transform_binned(self, X: Any, bins: int, *, salt: str = "transform", desc: str = "phase 2") -> np.ndarray:
        """Liquid features per time window: each liquid neuron's spike count in `bins` equal windows of the
        `phase2_ms` presentation, float32 (samples, bins * neurons), window-major. The same simulation as
        `transform` (same `salt`): summed over the windows they are its counts. Records rasters batch by batch
        (batch x phase2_ms x neurons booleans in memory at a time)."""
        return self.transform_windows(X, [bins], salt=salt, desc=desc)[bins]

    def transform_windows(self, X: Any, bins: Sequence[int], *, salt: str = "transform",
                          desc: str = "phase 2") -> dict[int, np.ndarray]:
        """`transform_binned` for several window counts from one phase 2: {count: (samples, count * neurons)}.
        Phase 2 is the cost, so a sweep over window counts simulates once."""
        steps = self.config.protocol.phase2_ms
        if isinstance(bins, (str, bytes)) or np.ndim(bins) != 1 or len(bins) == 0:
            raise AstrosnnError(f"bins: give a list of at least one window count, got {bins!r}")
        for b in bins:
            if isinstance(b, bool) or not isinstance(b, (int, np.integer)) or not 1 <= b <= steps:
                raise AstrosnnError(f"bins must be an integer in [1, {steps}] (phase2_ms), got {b!r}")
        n = self.network.n_liquid
        edges = {int(b): np.linspace(0, steps, int(b) + 1).round().astype(int) for b in bins}
        parts: dict[int, list[np.ndarray]] = {b: [] for b in edges}
        for r in self.simulate(X, record=True, salt=salt, desc=desc):
            spikes = r.spikes[:, :, :n].numpy()
            for b, e in edges.items():  # window sums in one reduceat per count (float32 sums of 0/1 are exact)
                parts[b].append(np.add.reduceat(spikes, e[:-1], axis=1, dtype=np.float32).reshape(len(spikes), b * n))
        return {b: np.concatenate(p) if p else np.zeros((0, b * n), np.float32) for b, p in parts.items()}

    def record(self, X: Any, n: int | None = None, *, salt: str = "record"):
        """Full rasters (B, T, N + n_in) and astrocyte traces of `n` evenly spaced samples of X (the paper's
        round(len * k / n)); returns the engine's SimulationResult."""
        n = self.config.protocol.bf_samples if n is None else n
        n = max(1, min(int(n), len(X)))
        idx = sorted({min(len(X) - 1, round(len(X) * k / n)) for k in range(n)})
        subset = [X[i] for i in idx] if isinstance(X, list) else X[idx]
        old = self.progress
        self.progress = False
        try:
            results = list(self.simulate(subset, record=True, salt=salt))
        finally:
            self.progress = old
        return SimulationResult(spikes=torch.cat([r.spikes for r in results]), counts=torch.cat([r.counts for r in results]),
                         weights=torch.cat([r.weights for r in results]), astro=torch.cat([r.astro for r in results]))

    def branching_factor(self, X: Any, n: int | None = None) -> tuple[float, np.ndarray]:
        """The paper's branching factor (mean, per-sample) over `n` evenly spaced samples of X."""
        return self.branching_factor_of(self.record(X, n))

    def branching_factor_of(self, recorded: SimulationResult) -> tuple[float, np.ndarray]:
        """(mean, per-sample) branching factor of rasters from `record`, over `bf_window`."""
        per = branching_factor_per_sample(recorded.spikes, self.network, window=self.bf_window)
        return mean_branching_factor(per), per

    @property
    def bf_window(self) -> tuple[int, int]:
        """[25, 225) ms of a 250-ms presentation; the same 10% margins for other durations."""
        t = self.config.protocol.phase2_ms
        return (round(0.1 * t), round(0.9 * t))

    # ------------------------------------------------------------------ estimator API
    def fit_readout(self, features, y, val_features=None, y_val=None, test_features=None, y_test=None) -> NALSM:
        t0 = time.perf_counter()
        self.readout = train_readout(features, y, val_features, y_val, test_features, y_test,
                                     config=self.config.readout, progress=self.progress)
        self.timings["readout_s"] = time.perf_counter() - t0
        return self

    def fit(self, X: Any, y, X_val: Any = None, y_val=None, *, X_test: Any = None, y_test=None) -> NALSM:
        """Phase 1 on X, phase-2 features of X (and X_val), then the readout. X_test/y_test, if given, only
        log the test accuracy per epoch (the paper reports it at the best-validation epoch); never used
        for selection."""
        y = np.asarray(y)
        if len(y) != len(X):
            raise AstrosnnError(f"{len(X)} samples but {len(y)} labels")
        self.initialize(X)
        splits = {"train": X, "validation": X_val, "test": X_test}
        feats = {s: self.timed_transform(x, PHASE2_SALTS[s]) for s, x in splits.items() if x is not None}
        self.fit_readout(feats["train"], y, feats.get("validation"), y_val, feats.get("test"), y_test)
        return self

    def timed_transform(self, X: Any, split: str) -> np.ndarray:
        t0 = time.perf_counter()
        f = self.transform(X, salt=split, desc=f"phase 2 ({split})")
        self.timings[f"phase2_{split}_s"] = time.perf_counter() - t0
        self.counts[f"phase2_{split}_samples"] = len(f)
        return f

    def predict(self, X: Any) -> np.ndarray:
        self._require("readout")
        return self.readout.predict(self.transform(X))

    def predict_proba(self, X: Any) -> np.ndarray:
        self._require("readout")
        return self.readout.predict_proba(self.transform(X))

    def score(self, X: Any, y) -> float:
        """Accuracy on (X, y)."""
        self._require("readout")
        return float(np.mean(self.predict(X) == np.asarray(y)))

    # ------------------------------------------------------------------ persistence
    def save(self, folder: str | Path) -> Path:
        """config.json, model.json, liquid.safetensors/.json (topology with the phase-1 weights),
        readout.safetensors; all atomic, no pickle. model.json, written last, is the manifest: the sha256
        of every other file and the seed, checked by `load`."""
        self._require()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        weights = self.weights.detach().cpu().numpy().astype(np.float32)
        if not np.all(np.isfinite(weights)):
            raise AstrosnnError("the liquid weights contain NaN or infinite values: not saving them")
        trained = replace(self.network, weight=weights)
        trained.save(folder / "liquid.safetensors")
        atomic_write_json(folder / "config.json", self.config.to_dict())
        files = ["config.json", "liquid.safetensors", "liquid.json"]
        if self.readout is not None:
            save_tensors(folder / "readout.safetensors", self.readout.to_tensors(),
                         metadata={"readout": json.dumps(self.readout.metadata())})
            files.append("readout.safetensors")
        else:
            (folder / "readout.safetensors").unlink(missing_ok=True)
        atomic_write_json(folder / "model.json", {
            "format": MODEL_FORMAT, "n_inputs": self.n_inputs, "input_kind": self.input_kind,
            "rate_max": self.rate_max, "backend": self.backend, "versions": versions(),
            "readout": self.readout.metadata() if self.readout is not None else None,
            "seed": self.config.seed, "files": {name: _sha256(folder / name) for name in files}})
        return folder

    @classmethod
    def load(cls, folder: str | Path, *, backend: str = AUTO, progress: bool = False) -> NALSM:
        """A saved model, checked: file checksums (model.json's manifest), the config against the stored
        tensors (grid, inputs, seed), finite weights; each fault is one AstrosnnError naming the file."""
        folder = Path(folder)
        meta = load_json(folder / "model.json")
        if not isinstance(meta, dict) or meta.get("format") != MODEL_FORMAT:
            raise AstrosnnError(f"{folder / 'model.json'}: not an astrosnn NALSM model")
        files = meta.get("files")
        if files is not None:  # folders saved before the manifest have none
            if not isinstance(files, dict) or not {"config.json", "liquid.safetensors", "liquid.json"} <= set(files):
                raise AstrosnnError(f"{folder / 'model.json'}: malformed file manifest")
            for name, digest in files.items():
                path = folder / str(name)
                if not isinstance(name, str) or "/" in name or name.startswith("."):
                    raise AstrosnnError(f"{folder / 'model.json'}: malformed file manifest")
                if not path.is_file():
                    raise AstrosnnError(f"{path}: missing (listed in model.json)")
                if _sha256(path) != digest:
                    raise AstrosnnError(f"{path}: content does not match its checksum in model.json "
                                        "(corrupted, or from another model)")
        model = cls(NALSMConfig.from_json(folder / "config.json"), backend=backend, progress=progress)
        trained = Network.load(folder / "liquid.safetensors")
        _check_liquid(model.config, trained, meta, folder)
        model.network = trained
        model.weights = torch.from_numpy(np.asarray(trained.weight, dtype=np.float32)).clone()
        model.n_inputs, model.input_kind = int(meta["n_inputs"]), meta.get("input_kind")
        model.rate_max = meta.get("rate_max")
        if meta.get("readout") is not None:
            if not isinstance(meta["readout"], dict):
                raise AstrosnnError(f"{folder / 'model.json'}: malformed readout entry")
            model.readout = Readout.from_tensors(load_tensors(folder / "readout.safetensors"), meta["readout"])
            _check_readout(model.readout, trained.n_liquid, folder / "readout.safetensors")
        return model

    def __repr__(self) -> str:
        c = self.config
        state = "fitted" if self.readout is not None else ("initialised" if self.network is not None else "new")
        return (f"NALSM(variant={c.variant!r}, grid={'x'.join(map(str, c.liquid.grid))}, seed={c.seed}, "
                f"backend={self.backend!r}, {state})")


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _check_liquid(cfg: NALSMConfig, net: Network, meta: dict, folder: Path) -> None:
    """The stored liquid against config.json and model.json."""
    where = folder / "liquid.safetensors"
    if tuple(net.grid) != tuple(cfg.liquid.grid) or net.n_liquid != int(np.prod(cfg.liquid.grid)):
        raise AstrosnnError(f"{where}: a {'x'.join(map(str, net.grid))} liquid of {net.n_liquid} neurons, but "
                            f"config.json says grid {'x'.join(map(str, cfg.liquid.grid))}")
    n_inputs = meta.get("n_inputs")
    if isinstance(n_inputs, bool) or not isinstance(n_inputs, int) or n_inputs != net.n_input:
        raise AstrosnnError(f"{folder / 'model.json'}: n_inputs {n_inputs!r} does not match the liquid's "
                            f"{net.n_input} input neurons")
    if "seed" in meta and meta["seed"] != cfg.seed:
        raise AstrosnnError(f"{folder / 'model.json'}: seed {meta['seed']!r} but config.json has seed {cfg.seed}")
    rate_max = meta.get("rate_max")
    if rate_max is not None and (isinstance(rate_max, bool) or not isinstance(rate_max, int | float)
                                 or not np.isfinite(rate_max) or rate_max <= 0):
        raise AstrosnnError(f"{folder / 'model.json'}: rate_max must be a positive finite number, got {rate_max!r}")
    if not np.all(np.isfinite(net.weight)):
        raise AstrosnnError(f"{where}: weights contain NaN or infinite values")


def _check_readout(readout: Readout, n_liquid: int, where: Path) -> None:
    w, b, k = readout.weight, readout.bias, len(readout.classes)
    if w.dim() != 2 or sorted(w.shape) != sorted((n_liquid, k)) or tuple(b.shape) != (k,):
        raise AstrosnnError(f"{where}: readout of shape {tuple(w.shape)} does not fit a {n_liquid}-neuron liquid "
                            f"with {k} classes")
    if not (bool(torch.isfinite(w).all()) and bool(torch.isfinite(b).all())):
        raise AstrosnnError(f"{where}: readout weights contain NaN or infinite values")
