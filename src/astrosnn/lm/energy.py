"""Sparsity and energy of the LM models, as the SNN literature reports them.

:func:`spike_rates` measures each spiking layer's firing rate (spikes per neuron per token) on a token
stream. :func:`op_counts` lists a model's products per token with their kind: a product whose input is a
spike vector is *spike-driven* (``W s`` adds the columns of the active inputs: ``rate * fan_in * fan_out``
accumulates, ACs); every other product is a dense multiply-accumulate (MAC). :func:`energy_pj` prices them
with the usual 45 nm figures (Horowitz 2014): 0.9 pJ per 32-bit float add (AC), 4.6 pJ per 32-bit float
multiply-add (MAC; 3.7 pJ multiply + 0.9 pJ add).

What is spike-driven in AstroSNN (per block): ``W_o s`` (the AM-SU's output projection, on the AM-SU's
spikes) and ``W_2 s`` (the MLP's second Linear, on the MLP's spikes). Dense: the input current ``W_I x``, the
astrocyte's key/query/value (and gate) projections ``W_k x~, W_q x~, W_v x`` of the residual stream, the token
shift, the astrocyte memory's write ``H = lambda H + v k^T`` and read ``H q`` (real-valued outer products),
the MLP's first Linear ``W_1 x`` and the LM head. Neuron updates (``u = beta u (1 - s) + I``: one multiply-add
per neuron and token) are counted as MACs; norms, nonlinearities and the embedding lookup are not counted
(the usual convention; they are O(width) per token).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["AC_PJ", "MAC_PJ", "energy_pj", "op_counts", "spike_rates"]

AC_PJ = 0.9  # 32-bit float add, 45 nm (Horowitz 2014)
MAC_PJ = 4.6  # 32-bit float multiply (3.7 pJ) + add (0.9 pJ)


def _spiking_layers(model: nn.Module) -> dict[str, nn.Module]:
    """``{"block0.amsu": module, "block0.mlp": module, ...}`` for the layers that spike."""
    from astrosnn.lm.spiking import SpikingLIF

    layers: dict[str, nn.Module] = {}
    for i, block in enumerate(getattr(model, "blocks", [])):
        amsu = getattr(block, "amsu", None)
        if amsu is not None and amsu.config.spiking:
            layers[f"block{i}.amsu"] = amsu
        lif = getattr(block, "lif", None)
        if isinstance(lif, SpikingLIF):
            layers[f"block{i}.mlp"] = lif
    return layers


@torch.no_grad()
def spike_rates(
    model: nn.Module, ids: Tensor, batch_size: int = 8, seq_len: int = 128, max_tokens: int = 65536
) -> dict[str, float]:
    """Per spiking layer, the mean spikes per neuron per token over the stream `ids` (1-D token ids).

    The stream (at most `max_tokens`) is cut into `batch_size` parallel streams run in windows of `seq_len`
    with the state carried, as evaluation does. ``{}`` for a model without spiking layers.
    """
    layers = _spiking_layers(model)
    if not layers:
        return {}
    # a token folder's split is a uint16/uint32 memmap: read only what is used, as int64 ids
    ids = torch.as_tensor(np.asarray(ids[:max_tokens], dtype=np.int64)).reshape(-1)
    batch_size = max(1, min(batch_size, len(ids) // max(seq_len, 1) or 1))
    per = len(ids) // batch_size
    if per == 0:
        return {}
    streams = ids[: per * batch_size].view(batch_size, per).to(model.embed.weight.device)
    sums = {name: 0.0 for name in layers}
    counts = {name: 0 for name in layers}
    hooks = []
    for name, module in layers.items():

        def hook(mod, inputs, output, name=name):  # noqa: ANN001, ANN202
            spikes = output[0]
            sums[name] += float(spikes.sum())
            counts[name] += spikes.numel()

        hooks.append(module.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        state = None
        for start in range(0, per, seq_len):
            _, state = model(streams[:, start : start + seq_len], state)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return {name: sums[name] / counts[name] for name in layers if counts[name]}


def _product(name: str, kind: str, count: float, note: str = "") -> dict[str, Any]:
    return {"product": name, "kind": kind, "ops": float(count), "note": note}


def op_counts(model: nn.Module, rates: dict[str, float] | None = None, context: int = 128) -> list[dict[str, Any]]:
    """The products per token of `model` (one layer's row per block summed over blocks), kind ``mac`` or ``ac``.

    `rates`: :func:`spike_rates` of the model (missing layers count as rate 1/2); `context`: the Transformer's
    attention span (its per-token attention cost grows with it).
    """
    from astrosnn.lm.memory import memory_rule

    kind = getattr(model, "kind", "")
    c = model.config
    d, V = c.width, c.vocab_size
    rows: list[dict[str, Any]] = []
    if kind in ("astrosnn", "lif-snn", "linear-attention"):
        a = c.amsu
        hidden = d * c.mlp_ratio
        L = c.layers
        rates = rates or {}
        r_amsu = sum(rates.get(f"block{i}.amsu", 0.5) for i in range(L)) / L
        r_mlp = sum(rates.get(f"block{i}.mlp", 0.5) for i in range(L)) / L
        if a.spiking:
            rows.append(_product("W_I x (input current)", "mac", L * d * d, "residual stream, dense"))
        if a.astrocyte:
            gates = memory_rule(a.memory).gate_count * a.heads
            rows.append(_product("W_v x, W_k x~, W_q x~ (astrocyte projections)", "mac", L * 3 * d * d, "dense"))
            if gates:
                rows.append(_product("W_g x (memory gates)", "mac", L * gates * d, "dense"))
            rows.append(_product("token shift", "mac", L * a.shift_taps * d, "dense"))
            extra = 1 if a.memory in ("delta", "gated-delta") else 0  # H k for the error
            rows.append(_product("memory write + read (lambda H + v k^T, H q)", "mac",
                                 L * (3 + extra) * d * a.head_size, "dense, per head d_h x d_h"))  # fmt: skip
        if a.spiking:
            rows.append(_product("AM-SU neuron updates", "mac", L * d, "u = beta u (1 - s) + I"))
            rows.append(_product("W_o s (AM-SU output)", "ac", L * r_amsu * d * d, f"spike-driven, rate {r_amsu:.3f}"))
        else:
            rows.append(_product("W_o o (output)", "mac", L * d * d, "dense (no neuron)"))
        rows.append(_product("W_1 x (MLP in)", "mac", L * d * hidden, "dense"))
        if a.spiking:
            rows.append(_product("MLP neuron updates", "mac", L * hidden, "u = beta u (1 - s) + I"))
            rows.append(_product("W_2 s (MLP out)", "ac", L * r_mlp * hidden * d, f"spike-driven, rate {r_mlp:.3f}"))
        else:
            rows.append(_product("W_2 gelu (MLP out)", "mac", L * hidden * d, "dense"))
    elif kind == "lstm":
        L = c.layers
        rows.append(_product("LSTM gates W [x; h]", "mac", L * 4 * 2 * d * d, "dense"))
        rows.append(_product("LSTM cell updates", "mac", L * 3 * d, "c = f c + i g, h = o tanh(c)"))
    elif kind == "transformer":
        L, hidden = c.layers, c.mlp_ratio * c.width
        span = min(context, c.context)
        rows.append(_product("W_qkv x", "mac", L * 3 * d * d, "dense"))
        rows.append(_product(f"attention q K^T, a V (context {span})", "mac", L * 2 * span * d, "dense"))
        rows.append(_product("W_proj", "mac", L * d * d, "dense"))
        rows.append(_product("MLP W_1, W_2", "mac", L * 2 * d * hidden, "dense"))
    else:
        raise ValueError(f"no operation count for model kind {kind!r}")
    rows.append(_product("LM head", "mac", d * V, "dense"))
    return rows


def energy_pj(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Totals of :func:`op_counts`: ``mac``, ``ac`` per token and the energy in pJ per token."""
    mac = sum(r["ops"] for r in rows if r["kind"] == "mac")
    ac = sum(r["ops"] for r in rows if r["kind"] == "ac")
    return {"mac": mac, "ac": ac, "energy_pj": MAC_PJ * mac + AC_PJ * ac}
