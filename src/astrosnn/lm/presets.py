"""Model-size presets of AstroSNN and `lm plan`: what a run needs before renting GPUs.

Each preset fixes width, layers, heads and the context (the truncated-BPTT length, `--seq-len`). Its name is
its parameter count with its reference vocabulary (``vocab``): the 65 characters of tiny-shakespeare for
``astrosnn-1m``, a 4,096-token BPE for ``astrosnn-10m``, GPT-2's 50,257 tokens above (counted on the meta device,
no memory: see :func:`parameters`; the tests check each count lies within 15% of the name).

:func:`plan` estimates, per process, with N parameters, micro-batch b rows of T tokens, width d, L layers, vocab V:

- DDP: weights + gradients + AdamW's two moments, fp32: ``16 N`` bytes, plus activations;
- FSDP (K processes): ``16 N / K`` plus the largest block gathered whole with its gradient (``8 N_block``),
  plus activations;
- activations kept for the backward pass, fp32 (bf16 halves them): ``4 b T (26 d L + 2 V)`` bytes (about 26
  values per token per block: norms, AM-SU projections, membranes and spikes, the MLP's 4d hidden layer and its
  spikes; logits and their gradient), or ``4 b T (d L + 26 d + 2 V)`` with activation checkpointing (each
  block's input, one block recomputed at a time);
- FLOPs per token (training): ``6 (N - V d) + 6 V d`` (the 6N rule, the head's matmul counted once, the embedding
  lookup free) plus the astrocyte's chunked memory, ``3 L (4 C d + 4 d^2 / h)`` (chunk length C: within a chunk
  the scores and their weighted sum, between chunks reading and updating the (d/h)^2 memory of each of h heads;
  x3 for forward + backward).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import torch

from astrosnn.errors import AstrosnnError

DEFAULT_PLAN_VOCAB = 50257  # GPT-2's BPE


@dataclass(frozen=True)
class Preset:
    name: str
    width: int
    layers: int
    heads: int
    context: int  # tokens per row (truncated-BPTT length)
    vocab: int  # the reference vocabulary of the name's parameter count
    nominal: int  # the parameter count the name states


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("astrosnn-1m", 144, 4, 4, 128, 65, 1_000_000),
        Preset("astrosnn-10m", 320, 6, 8, 256, 4096, 10_000_000),
        Preset("astrosnn-125m", 768, 12, 12, 1024, DEFAULT_PLAN_VOCAB, 125_000_000),
        Preset("astrosnn-350m", 1024, 22, 16, 1024, DEFAULT_PLAN_VOCAB, 350_000_000),
        Preset("astrosnn-1.5b", 1600, 42, 25, 2048, DEFAULT_PLAN_VOCAB, 1_500_000_000),
    )
}


def preset_names() -> tuple[str, ...]:
    return tuple(PRESETS)


def get_preset(name: str) -> Preset:
    preset = PRESETS.get(name)
    if preset is None:
        raise AstrosnnError(f"unknown preset {name!r} (choose from {', '.join(PRESETS)})")
    return preset


def model_options(preset: Preset) -> dict[str, Any]:
    return {"width": preset.width, "layers": preset.layers, "heads": preset.heads}


def _meta_model(preset: Preset, vocab_size: int, layers: int | None = None) -> torch.nn.Module:
    from astrosnn.lm.registry import build_model

    rng = torch.get_rng_state()
    try:
        with torch.device("meta"):
            opts = {**model_options(preset), **({"layers": layers} if layers else {})}
            return build_model("astrosnn", vocab_size, **opts)
    finally:
        torch.set_rng_state(rng)


def parameters(preset: Preset | str, vocab_size: int | None = None) -> int:
    """Parameters of the preset's AstroSNN (counted on the meta device: no memory)."""
    from astrosnn.lm.registry import count_parameters

    preset = get_preset(preset) if isinstance(preset, str) else preset
    return count_parameters(_meta_model(preset, vocab_size or preset.vocab))


def _chunk_size() -> int:
    from astrosnn.lm.amsu import AMSUConfig

    return int(AMSUConfig.chunk_size)


def estimate(preset: Preset, vocab_size: int, nproc: int, seq_len: int, batch_size: int,
             activation_checkpointing: bool = False, bytes_per_value: int = 4) -> dict[str, Any]:  # fmt: skip
    """The formulas of the module docstring (bytes, FLOPs) for one process of `nproc`."""
    model = _meta_model(preset, vocab_size)
    n = sum(p.numel() for p in model.parameters())
    block = sum(p.numel() for p in model.blocks[0].parameters())
    d, L, h, V = preset.width, preset.layers, preset.heads, vocab_size
    per_token = L * d + 26 * d + 2 * V if activation_checkpointing else 26 * d * L + 2 * V
    act = bytes_per_value * batch_size * seq_len * per_token
    chunk = _chunk_size()
    flops = 6 * (n - V * d) + 6 * V * d + 3 * L * (4 * chunk * d + 4 * d * d // h)
    return {
        "parameters": n,
        "block_parameters": block,
        "ddp_bytes": 16 * n + act,
        "fsdp_bytes": math.ceil(16 * n / nproc) + 8 * block + act,
        "activation_bytes": act,
        "flops_per_token": flops,
        "chunk": chunk,
    }


def measure(preset: Preset, vocab_size: int, seq_len: int = 32, batch_size: int = 1, repeats: int = 2) -> dict[str, Any]:
    """Tokens/s of forward+backward (no optimizer) here, at a test-sized batch. A model whose weights and
    gradients would take over 2 GiB is timed at 1 and 2 layers and extrapolated linearly in the layers."""
    from astrosnn.lm.registry import build_model

    n = parameters(preset, vocab_size)
    layer_counts = [preset.layers] if 8 * n <= 2 * 2**30 else [1, 2]
    times = []
    for layers in layer_counts:
        state = torch.get_rng_state()
        try:
            model = build_model("astrosnn", vocab_size, **{**model_options(preset), "layers": layers})
        finally:
            torch.set_rng_state(state)
        ids = torch.randint(0, vocab_size, (batch_size, seq_len + 1), generator=torch.Generator().manual_seed(0))
        best = math.inf
        for _ in range(repeats):
            t0 = time.perf_counter()
            logits, _ = model(ids[:, :-1])
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, vocab_size), ids[:, 1:].reshape(-1))
            loss.backward()
            best = min(best, time.perf_counter() - t0)
            model.zero_grad(set_to_none=True)
        times.append(best)
        del model
    seconds = times[0] if len(times) == 1 else times[0] + (preset.layers - 1) * max(times[1] - times[0], 0.0)
    return {"tokens_per_second": batch_size * seq_len / seconds, "seconds": seconds, "seq_len": seq_len,
            "batch_size": batch_size, "extrapolated": len(times) > 1, "threads": torch.get_num_threads()}  # fmt: skip


def plan(name: str, nproc: int = 1, vocab_size: int | None = None, seq_len: int | None = None, batch_size: int = 8,
         measure: bool = True, measure_seq_len: int = 32) -> dict[str, Any]:  # fmt: skip
    """Everything `astrosnn lm plan` prints, as a dict."""
    preset = get_preset(name)
    if nproc < 1 or batch_size < 1:
        raise AstrosnnError("nproc and batch size must be >= 1")
    vocab = vocab_size or preset.vocab
    seq = seq_len or preset.context
    out: dict[str, Any] = {"preset": asdict(preset), "nproc": nproc, "vocab_size": vocab, "seq_len": seq,
                           "batch_size": batch_size}  # fmt: skip
    out["fp32"] = estimate(preset, vocab, nproc, seq, batch_size)
    out["fp32_checkpointed"] = estimate(preset, vocab, nproc, seq, batch_size, activation_checkpointing=True)
    out["bf16_checkpointed"] = estimate(preset, vocab, nproc, seq, batch_size, True, bytes_per_value=2)
    out["measured"] = _measured(preset, vocab, measure_seq_len) if measure else None
    return out


def _measured(preset: Preset, vocab: int, seq_len: int) -> dict[str, Any]:
    return measure(preset, vocab, seq_len=seq_len)


def _gib(x: float) -> str:
    return f"{x / 2**30:,.2f} GiB"


def format_plan(p: dict[str, Any]) -> str:
    pre, e, c, b = p["preset"], p["fp32"], p["fp32_checkpointed"], p["bf16_checkpointed"]
    k = p["nproc"]
    lines = [
        f"preset {pre['name']}: width {pre['width']}, layers {pre['layers']}, heads {pre['heads']}, context "
        f"{pre['context']}",
        f"parameters: {e['parameters']:,} (vocabulary {p['vocab_size']:,}; {e['block_parameters']:,} per block)",
        f"memory per process, micro-batch {p['batch_size']} x {p['seq_len']}, {k} process(es) "
        "(weights + gradients + AdamW fp32, plus activations):",
        f"  DDP : {_gib(e['ddp_bytes'])} fp32 | {_gib(c['ddp_bytes'])} with activation checkpointing | "
        f"{_gib(b['ddp_bytes'])} bf16 + checkpointing",
        f"  FSDP: {_gib(e['fsdp_bytes'])} fp32 | {_gib(c['fsdp_bytes'])} with activation checkpointing | "
        f"{_gib(b['fsdp_bytes'])} bf16 + checkpointing",
        f"FLOPs per token (training, 6N + astrocyte memory, chunk {e['chunk']}): {e['flops_per_token']:.3e}",
    ]
    m = p["measured"]
    if m is not None:
        how = ", extrapolated from 1 and 2 layers" if m["extrapolated"] else ""
        lines.append(f"measured here: {m['tokens_per_second']:,.0f} tokens/s forward+backward (batch "
                     f"{m['batch_size']} x {m['seq_len']}, {m['threads']} thread(s), CPU{how})")  # fmt: skip
    return "\n".join(lines)
