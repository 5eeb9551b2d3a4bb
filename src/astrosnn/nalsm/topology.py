"""The NALSM liquid: a 3-D grid of LIF neurons with distance-dependent wiring and a random input projection.

Spec nalsm.md §1.2-1.3. Index conventions: liquid neurons 0..N-1 (excitatory first, then inhibitory),
input neurons N..N+n_in-1. Synapses are flat COO arrays sorted by (pre, post), hence liquid->liquid first,
then input->liquid. The order fixes the summation order of synaptic input in every backend.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from astrosnn.errors import AstrosnnError
from astrosnn.nalsm.params import WEIGHT_CLIP, LiquidConfig
from astrosnn.runinfo import atomic_write_json, load_json, load_tensors, save_tensors

PRE_EXC, PRE_INH, PRE_INPUT = 0, 1, 2  # the kinds of presynaptic neuron (Network.pre_kind)
FORMAT = "astrosnn.nalsm.network/1"
_LIQUID = LiquidConfig()  # build_network's defaults
T = TypeVar("T")


@dataclass
class Network:
    grid: tuple[int, int, int]
    positions: np.ndarray  # (N, 3) int grid coordinates of each liquid neuron
    n_exc: int
    n_inh: int
    n_input: int
    pre: np.ndarray  # int64 (S,)
    post: np.ndarray  # int64 (S,)
    weight: np.ndarray  # float32 (S,)
    pre_kind: np.ndarray  # int8 (S,): 0 exc, 1 inh, 2 input
    params: dict[str, Any] = field(default_factory=dict)  # how it was built (seed, lam, C, ...)
    _memo: dict[str, tuple] = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def n_liquid(self) -> int:
        return self.n_exc + self.n_inh

    @property
    def n_neurons(self) -> int:
        """Liquid plus input neurons (the width of a full spike raster)."""
        return self.n_liquid + self.n_input

    @property
    def n_synapses(self) -> int:
        return int(self.pre.shape[0])

    @property
    def n_recurrent(self) -> int:
        return int(np.count_nonzero(self.pre_kind != PRE_INPUT))

    def memo(self, key: str, compute: Callable[[Network], T]) -> T:
        """`compute(self)`, computed once per network and kept on it (e.g. a backend's synapse layout).

        Recomputed when `pre`, `post` or `pre_kind` is replaced by another array (not on in-place edits)."""
        arrays = (self.pre, self.post, self.pre_kind)
        hit = self._memo.get(key)
        if hit is None or any(a is not b for a, b in zip(hit[0], arrays, strict=True)):
            hit = (arrays, compute(self))
            self._memo[key] = hit
        return hit[1]

    def save(self, path: str | Path) -> Path:
        """Write `network.safetensors` + `network.json` into a folder (or `X.safetensors` + `X.json`)."""
        tensor_path, json_path = _paths(Path(path))
        save_tensors(tensor_path, {
            "positions": torch.from_numpy(np.ascontiguousarray(self.positions, dtype=np.int64)),
            "pre": torch.from_numpy(np.ascontiguousarray(self.pre, dtype=np.int64)),
            "post": torch.from_numpy(np.ascontiguousarray(self.post, dtype=np.int64)),
            "weight": torch.from_numpy(np.ascontiguousarray(self.weight, dtype=np.float32)),
            "pre_kind": torch.from_numpy(np.ascontiguousarray(self.pre_kind, dtype=np.int8)),
        }, metadata={"format": FORMAT})
        atomic_write_json(json_path, {
            "format": FORMAT, "grid": list(self.grid), "n_exc": self.n_exc, "n_inh": self.n_inh,
            "n_input": self.n_input, "n_synapses": self.n_synapses, "params": self.params,
        })
        return tensor_path

    @classmethod
    def load(cls, path: str | Path) -> Network:
        tensor_path, json_path = _paths(Path(path))
        meta = load_json(json_path)
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise AstrosnnError(f"{json_path}: not an astrosnn NALSM network description")
        t = load_tensors(tensor_path)
        missing = {"positions", "pre", "post", "weight", "pre_kind"} - set(t)
        if missing:
            raise AstrosnnError(f"{tensor_path}: missing tensors {sorted(missing)}")
        try:
            net = cls(
                grid=tuple(int(g) for g in meta["grid"]),  # type: ignore[arg-type]
                positions=t["positions"].numpy(), n_exc=int(meta["n_exc"]), n_inh=int(meta["n_inh"]),
                n_input=int(meta["n_input"]), pre=t["pre"].numpy(), post=t["post"].numpy(),
                weight=t["weight"].numpy(), pre_kind=t["pre_kind"].numpy(), params=meta.get("params", {}),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise AstrosnnError(f"{json_path}: malformed network description ({e})") from None
        _validate(net, str(tensor_path))
        return net


def _paths(path: Path) -> tuple[Path, Path]:
    if path.suffix == ".safetensors":
        return path, path.with_suffix(".json")
    if path.suffix == ".json":
        return path.with_suffix(".safetensors"), path
    return path / "network.safetensors", path / "network.json"


def _validate(net: Network, where: str) -> None:
    s = net.pre.shape
    if not (net.post.shape == s == net.weight.shape == net.pre_kind.shape) or len(s) != 1:
        raise AstrosnnError(f"{where}: synapse arrays have different shapes")
    if net.positions.shape != (net.n_liquid, 3):
        raise AstrosnnError(f"{where}: positions shape {net.positions.shape} != ({net.n_liquid}, 3)")
    if s[0] and (net.pre.min() < 0 or net.pre.max() >= net.n_neurons
                 or net.post.min() < 0 or net.post.max() >= net.n_liquid):
        raise AstrosnnError(f"{where}: synapse index out of range")


def _check_grid(grid: tuple[int, ...]) -> tuple[int, int, int]:
    if len(grid) != 3 or any(int(g) != g for g in grid):
        raise AstrosnnError(f"grid must be three integers, got {grid!r}")
    if any(g <= 0 for g in grid):
        raise AstrosnnError(f"grid sides must be positive, got {'x'.join(str(g) for g in grid)}")
    return int(grid[0]), int(grid[1]), int(grid[2])


def build_network(
    grid: tuple[int, int, int] = _LIQUID.grid,
    n_inputs: int = 784,
    seed: int = 0,
    *,
    lam: float = _LIQUID.lam,
    c_ee: float = _LIQUID.c_ee,
    c_ei: float = _LIQUID.c_ei,
    c_ie: float = _LIQUID.c_ie,
    c_ii: float = _LIQUID.c_ii,
    input_density: float = _LIQUID.input_density,
    weight_magnitude: float = _LIQUID.weight_magnitude,
    exc_fraction: float = 0.8,
    chunk: int = 1024,
) -> Network:
    """Build a liquid (vectorised, seeded); the defaults are `params.LiquidConfig`'s.

    c_ee: post E <- pre E, c_ei: post I <- pre E, c_ie: post E <- pre I, c_ii: post I <- pre I.
    Random draws, in order: grid permutation, one uniform per (post, pre) pair in post-major order,
    the input pairs (without replacement), the input signs.
    """
    grid = _check_grid(tuple(grid))
    if n_inputs < 0:
        raise AstrosnnError(f"n_inputs must be >= 0, got {n_inputs}")
    if lam <= 0:
        raise AstrosnnError(f"lambda must be > 0, got {lam}")
    for name, c in (("c_ee", c_ee), ("c_ei", c_ei), ("c_ie", c_ie), ("c_ii", c_ii), ("input_density", input_density)):
        if not 0.0 <= c <= 1.0:
            raise AstrosnnError(f"{name} must be in [0, 1], got {c}")
    if weight_magnitude < 0:
        raise AstrosnnError(f"weight_magnitude must be >= 0, got {weight_magnitude}")
    rng = np.random.default_rng(seed)
    n = grid[0] * grid[1] * grid[2]
    n_exc = int(round(exc_fraction * n))
    n_inh = n - n_exc

    points = np.stack(np.meshgrid(*(np.arange(g) for g in grid), indexing="ij"), axis=-1).reshape(-1, 3)
    positions = points[rng.permutation(n)].astype(np.int64)

    # recurrent: P(j -> i) = C[type_i, type_j] * exp(-(D_ij / lam)^2), one uniform per ordered pair
    is_inh = np.arange(n) >= n_exc
    c_table = np.array([[c_ee, c_ie], [c_ei, c_ii]], dtype=np.float32)  # [post kind, pre kind]
    pos_f = positions.astype(np.float32)
    posts, pres = [], []
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        d2 = ((pos_f[start:stop, None, :] - pos_f[None, :, :]) ** 2).sum(-1)
        prob = c_table[is_inh[start:stop, None].astype(np.intp), is_inh[None, :].astype(np.intp)]
        prob *= np.exp(-d2 / np.float32(lam * lam))
        take = rng.random((stop - start, n), dtype=np.float32) < prob
        take[np.arange(stop - start), np.arange(start, stop)] = False  # no self-connections
        i, j = np.nonzero(take)
        posts.append(i + start)
        pres.append(j)
    rec_post = np.concatenate(posts).astype(np.int64)
    rec_pre = np.concatenate(pres).astype(np.int64)
    order = np.lexsort((rec_post, rec_pre))
    rec_post, rec_pre = rec_post[order], rec_pre[order]

    # input -> liquid: exactly int(density * N * n_in) distinct (input, post) pairs
    n_in_syn = int(input_density * n * n_inputs)
    flat = np.sort(rng.choice(n * n_inputs, size=n_in_syn, replace=False)) if n_in_syn else np.zeros(0, np.int64)
    in_pre = (n + flat // n).astype(np.int64)
    in_post = (flat % n).astype(np.int64)
    in_sign = np.where(rng.random(n_in_syn) < 0.5, -1.0, 1.0).astype(np.float32)

    rec_kind = np.where(is_inh[rec_pre], PRE_INH, PRE_EXC).astype(np.int8)
    rec_w = np.where(rec_kind == PRE_INH, -1.0, 1.0).astype(np.float32)
    mag = np.float32(weight_magnitude)
    net = Network(
        grid=grid, positions=positions, n_exc=n_exc, n_inh=n_inh, n_input=int(n_inputs),
        pre=np.concatenate([rec_pre, in_pre]),
        post=np.concatenate([rec_post, in_post]),
        weight=np.concatenate([rec_w, in_sign]) * mag,
        pre_kind=np.concatenate([rec_kind, np.full(n_in_syn, PRE_INPUT, np.int8)]),
        params={"seed": seed, "lam": lam, "c_ee": c_ee, "c_ei": c_ei, "c_ie": c_ie, "c_ii": c_ii,
                "input_density": input_density, "weight_magnitude": weight_magnitude,
                "exc_fraction": exc_fraction},
    )
    net.weight = net.weight.astype(np.float32)
    return net


def network_from_synapses(
    pre: np.ndarray | list[int],
    post: np.ndarray | list[int],
    weight: np.ndarray | list[float],
    *,
    n_exc: int,
    n_inh: int = 0,
    n_input: int = 0,
    positions: np.ndarray | None = None,
) -> Network:
    """An explicit network from a synapse list (indices as in the module docstring); kinds follow from `pre`.

    Synapses are sorted by (pre, post), as the engine expects.
    """
    pre_a = np.asarray(pre, dtype=np.int64).reshape(-1)
    post_a = np.asarray(post, dtype=np.int64).reshape(-1)
    w = np.asarray(weight, dtype=np.float32).reshape(-1)
    n = n_exc + n_inh
    kind = np.where(pre_a >= n, PRE_INPUT, np.where(pre_a >= n_exc, PRE_INH, PRE_EXC)).astype(np.int8)
    order = np.lexsort((post_a, pre_a))
    if positions is None:
        positions = np.stack([np.arange(n), np.zeros(n, np.int64), np.zeros(n, np.int64)], axis=1)
    net = Network(grid=(max(n, 1), 1, 1), positions=np.asarray(positions, dtype=np.int64), n_exc=n_exc,
                  n_inh=n_inh, n_input=n_input, pre=pre_a[order], post=post_a[order], weight=w[order],
                  pre_kind=kind[order], params={"explicit": True})
    _validate(net, "network_from_synapses")
    return net


def block_bounds() -> np.ndarray:
    """(3, 2) float32 [low, high] per presynaptic kind: E [0, c], I [-c, 0], input [-c, c]; c = WEIGHT_CLIP."""
    c = np.float32(WEIGHT_CLIP)
    return np.array([[0.0, c], [-c, 0.0], [-c, c]], dtype=np.float32)


def clip_bounds(network: Network) -> tuple[np.ndarray, np.ndarray]:
    """Per-synapse (low, high) from `block_bounds` (E-pre [0,3], I-pre [-3,0], input [-3,3])."""
    bounds = block_bounds()[network.pre_kind.astype(np.intp)]
    return np.ascontiguousarray(bounds[:, 0]), np.ascontiguousarray(bounds[:, 1])


def adjacency(network: Network) -> tuple[np.ndarray, np.ndarray]:
    """(pre, post) of the liquid->liquid synapses only."""
    rec = network.pre_kind != PRE_INPUT
    return network.pre[rec], network.post[rec]


def describe(network: Network) -> dict[str, Any]:
    """Counts for logs and metrics."""
    return {"grid": "x".join(map(str, network.grid)), "n_liquid": network.n_liquid, "n_exc": network.n_exc,
            "n_inh": network.n_inh, "n_input": network.n_input, "n_recurrent": network.n_recurrent,
            "n_input_synapses": network.n_synapses - network.n_recurrent}


__all__ = ["Network", "build_network", "network_from_synapses", "block_bounds", "clip_bounds", "adjacency", "describe", "PRE_EXC", "PRE_INH",
           "PRE_INPUT"]
