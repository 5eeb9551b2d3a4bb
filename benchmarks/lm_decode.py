"""Per-token decode latency and state memory against context length (batch 1, one thread by default).

Recurrent models (AstroSNN, LIF-SNN, LSTM) carry a fixed-size state, so the cost of one more token does
not grow with the context; the Transformer's KV cache (and attention over it) grows with it.

Paths timed: ``fused`` = :class:`astrosnn.lm.decode.FusedDecoder` (AstroSNN, LIF-SNN on the CPU: what
``astrosnn lm generate`` uses), ``step`` = the reference ``model.step`` (every model; the LSTM's is one
``nn.LSTM`` call per token). The recurrent models are prefilled with a real forward over the context; the
Transformer (sinusoidal positions, so its parameter count does not grow with the context; its window is the
largest context + 1) gets a KV cache of the context's length filled with random keys/values (the cost of a
token depends only on the cache's length; a real 16k prefill would take minutes). Rounds interleave every
(model, context) point; the figure is the median over rounds.

    python benchmarks/lm_decode.py --contexts 64,1024,8192,16384 --params 1000000,10000000
    python benchmarks/lm_decode.py --device cuda --contexts 64,8192 --tokens 20
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from astrosnn.lm import build_model, count_parameters, width_for_parameters
from astrosnn.lm.baselines import TransformerState
from astrosnn.lm.decode import FusedDecoder, fused_unsupported_reason
from astrosnn.lm.state import flatten_state
from astrosnn.runinfo import versions


def state_bytes(state) -> int:  # noqa: ANN001
    return sum(t.numel() * t.element_size() for t in flatten_state(state) if t is not None)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def make(kind: str, params: int, vocab: int, max_ctx: int, device: str):  # noqa: ANN201
    opts = {"layers": 2 if kind == "lstm" else 4}
    if kind != "lstm":
        opts["heads"] = 4
    if kind == "transformer":
        opts.update(seq_len=max_ctx + 1, positions="sinusoidal")
    width = width_for_parameters(kind, vocab, params, **opts)
    torch.manual_seed(0)
    return build_model(kind, vocab, width=width, **opts).eval().to(device), width


@torch.no_grad()
def prepare(model, kind: str, context: int, vocab: int, device: str):  # noqa: ANN001, ANN201
    """The state after `context` tokens."""
    if kind == "transformer":
        c = model.config
        hd = c.width // c.heads
        kv = [torch.randn(1, c.heads, context, hd, device=device) for _ in range(2 * c.layers)]
        ids = torch.randint(0, vocab, (1, context), device=device)
        return TransformerState(ids, tuple(kv[: c.layers]), tuple(kv[c.layers :]))
    state = None
    for start in range(0, context, 4096):  # pieces: bounded memory for the sequence form
        ids = torch.randint(0, vocab, (1, min(4096, context - start)), device=device)
        _, state = model(ids, state)
    return state


def timer(model, path: str, state, device: str):  # noqa: ANN001, ANN201
    """A function(n) -> seconds per token over n tokens from the same state (the context stays fixed)."""
    x = torch.tensor([3], device=device)
    if path == "fused":
        dec = FusedDecoder(model)

        def run(n: int) -> float:
            dec.load_state(state)
            t0 = time.perf_counter()
            for _ in range(n):
                dec.step(x)
            return (time.perf_counter() - t0) / n

        return run

    def run(n: int) -> float:
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(n):
            model.step(x, state)
        _sync(device)
        return (time.perf_counter() - t0) / n

    return run


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="astrosnn,lif-snn,lstm,transformer")
    p.add_argument("--contexts", default="64,1024,8192,16384")
    p.add_argument("--params", default="1000000", help="comma-separated parameter targets")
    p.add_argument("--vocab", type=int, default=65)
    p.add_argument("--tokens", type=int, default=50, help="timed tokens per point and round")
    p.add_argument("--transformer-tokens", type=int, default=10, help="timed tokens per round at contexts >= 4096")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    try:  # numba's np.dot calls scipy's OpenBLAS: load it, then hold it to --threads like torch
        import scipy.linalg.cython_blas  # noqa: F401
        from threadpoolctl import threadpool_limits

        blas_limit = threadpool_limits(args.threads)  # noqa: F841  (kept for the whole run)
    except ImportError:
        pass
    contexts = [int(c) for c in args.contexts.split(",")]
    results = []
    for target in (int(v) for v in args.params.split(",")):
        points = []
        for kind in args.models.split(","):
            model, width = make(kind, target, args.vocab, max(contexts), args.device)
            paths = ["step"]
            if kind in ("astrosnn", "lif-snn") and fused_unsupported_reason(model) is None:
                paths = ["fused", "step"] if kind == "astrosnn" else ["fused"]
            for ctx in contexts:
                state = prepare(model, kind, ctx, args.vocab, args.device)
                for path in paths:
                    run = timer(model, path, state, args.device)
                    n = args.transformer_tokens if kind == "transformer" and ctx >= 4096 else args.tokens
                    run(2)  # warm-up (numba compile / load)
                    points.append(dict(kind=kind, path=path, width=width, params=count_parameters(model),
                                       context=ctx, run=run, n=n, times=[],
                                       state_kib=state_bytes(state) / 1024))  # fmt: skip
        for _ in range(args.rounds):  # interleaved
            for pt in points:
                pt["times"].append(pt["run"](pt["n"]))
        for pt in points:
            pt["ms"] = 1e3 * statistics.median(pt["times"])
            row = {k: v for k, v in pt.items() if k not in ("run", "times")}
            row["target"] = target
            results.append(row)
            print(json.dumps(row), flush=True)
    print(json.dumps({"config": vars(args), "versions": versions()}))
    print("\n| model | path | width | parameters | " + " | ".join(f"ms/token @ {c}" for c in contexts)
          + " | " + " | ".join(f"state KiB @ {c}" for c in contexts) + " |")  # fmt: skip
    print("|---|---|---:|---:|" + "---:|" * (2 * len(contexts)))
    seen = []
    for r in results:
        key = (r["target"], r["kind"], r["path"])
        if key in seen:
            continue
        seen.append(key)
        rows = [x for x in results if (x["target"], x["kind"], x["path"]) == key]
        print(f"| {r['kind']} | {r['path']} | {r['width']} | {r['params']:,} | "
              + " | ".join(f"{x['ms']:.3f}" for x in rows) + " | "
              + " | ".join(f"{x['state_kib']:,.0f}" for x in rows) + " |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
