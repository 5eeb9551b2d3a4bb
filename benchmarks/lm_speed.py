"""Training throughput of the LM models: tokens per second of forward + backward + AdamW step.

Each model of about ``--params`` parameters (width chosen by ``astrosnn.lm.width_for_parameters``) trains on random
character batches (``--batch`` x ``--seq-len``, vocabulary 65 as tiny-shakespeare) with the recurrent
state carried and detached between batches, as in truncated BPTT. For each thread count the models run
interleaved, ``--repeats`` rounds of ``--steps`` timed steps after a warm-up; the figure is the median
over rounds of wall-clock tokens/s (and of process CPU tokens/s, steadier on a shared machine).

    taskset -c 1 python benchmarks/lm_speed.py --threads 1 2 --markdown
    python benchmarks/lm_speed.py --width 512 --threads 2 --markdown   # AstroSNN at width 512, others matched
    python benchmarks/lm_speed.py --device cuda --threads 1 --steps 3  # on a GPU (synchronised timing)
    python benchmarks/lm_speed.py --models astrosnn lstm --threads 1 --steps 3   # quick look
    python benchmarks/lm_speed.py --models astrosnn astrosnn:layers=2 lstm --threads 1   # other shapes, same size

A model is ``kind`` or ``kind:key=value[:key=value]`` (options for ``build_model``; ``layers`` replaces the
kind's default depth below, and the width is then chosen for the same parameter count).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F

from astrosnn.core.surrogate import get_surrogate
from astrosnn.lm import build_model, count_parameters, width_for_parameters
from astrosnn.lm.scan import lif_scan
from astrosnn.lm.state import detach_state
from astrosnn.runinfo import seed_everything, versions

LAYERS = {"lstm": 2, "transformer": 4, "lif-snn": 4, "astrosnn": 4}


def parse_spec(spec: str) -> tuple[str, dict]:
    """``kind[:key=value...]`` -> (kind, options); values are ints, floats or strings."""
    kind, *items = spec.split(":")
    options = {}
    for item in items:
        key, _, text = item.partition("=")
        for cast in (int, float, str):
            try:
                options[key] = cast(text)
                break
            except ValueError:
                continue
    return kind, options


def make_model(kind: str, vocab: int, params: int, seq_len: int, options: dict, width: int | None = None):
    opts = {"layers": LAYERS[kind], "seq_len": seq_len, **options}
    if kind != "lstm":
        opts.setdefault("heads", 4)
    if width is None:
        width = width_for_parameters(kind, vocab, params, **opts)
    return build_model(kind, vocab, width=width, **opts), width


def _sync(device: str) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def timed_steps(model, opt, ids: torch.Tensor, steps: int, seq_len: int, state):
    """Run `steps` training steps; return (wall s, cpu s, state)."""
    vocab = model.config.vocab_size
    carries = getattr(model, "carries_state", True)  # as the trainer: the Transformer sees fresh windows
    _sync(ids.device)
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(steps):
        x = ids[:, i * seq_len : (i + 1) * seq_len]
        y = ids[:, i * seq_len + 1 : (i + 1) * seq_len + 1]
        logits, state = model(x, state if carries else None)
        loss = F.cross_entropy(logits.reshape(-1, vocab), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        state = detach_state(state)
    _sync(ids.device)
    return time.perf_counter() - wall, time.process_time() - cpu, state


def gemm_floor_ms(model, rows: int, repeats: int = 5) -> float:
    """Time of the dense products a training step cannot avoid: for every 2-D weight W (out x in) except the
    embedding, ``X W^T`` forward and the two backward products ``G W`` and ``G^T X``, as single GEMMs over all
    ``rows = batch x seq_len`` tokens (a lower bound: the model's own step does at least these FLOPs)."""
    shapes = [tuple(p.shape) for name, p in model.named_parameters() if p.ndim == 2 and "embed" not in name]
    tensors = [(torch.randn(rows, i), torch.randn(o, i), torch.randn(rows, o)) for o, i in shapes]
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for x, w, g in tensors:
            x @ w.t(), g @ w, g.t() @ x
        best = min(best, time.perf_counter() - t0)
    return 1e3 * best


def time_scan(args: argparse.Namespace) -> int:
    """Forward and backward of the fused scan alone, per thread count (median of 10 calls)."""
    B, T, N = args.batch, args.seq_len, 512
    for threads in args.threads:
        torch.set_num_threads(threads)
        current = torch.rand(B, T, N, requires_grad=True)
        beta, theta, zeros = torch.full((N,), 0.9), torch.ones(N), torch.zeros(B, N)
        weight = torch.randn(N, 64)
        fwd, bwd = [], []
        for _ in range(11):
            t0 = time.perf_counter()
            spikes, _ = lif_scan(current, None, beta, theta, zeros, zeros, get_surrogate())
            t1 = time.perf_counter()
            (spikes @ weight).sum().backward()  # the product makes a realistic, dense upstream gradient
            fwd.append(t1 - t0)
            bwd.append(time.perf_counter() - t1)
        print(json.dumps({
            "scan": f"{B}x{T}x{N} float32", "threads": threads,
            "forward_ms": round(1e3 * statistics.median(fwd[1:]), 2),
            "backward_incl_matmul_ms": round(1e3 * statistics.median(bwd[1:]), 2),
        }))  # fmt: skip
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["astrosnn", "lif-snn", "lstm"])
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    p.add_argument("--params", type=int, default=1_000_000)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--steps", type=int, default=5, help="timed steps per round")
    p.add_argument("--repeats", type=int, default=3, help="rounds per model and thread count")
    p.add_argument("--chunk-size", type=int, default=None, help="AM-SU chunk size (default: the model's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--width", type=int, default=None,
                   help="AstroSNN / LIF-SNN width (the other models are sized to the AstroSNN model's parameters)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--markdown", action="store_true", help="print a markdown table too")
    p.add_argument("--scan", action="store_true", help="time only the fused LIF scan (32 x 128 x 512)")
    args = p.parse_args()
    if args.scan:
        return time_scan(args)

    vocab = 65
    seed_everything(args.seed)
    results = []
    target = args.params
    if args.width:
        target = count_parameters(make_model("astrosnn", vocab, 0, args.seq_len, {}, args.width)[0])
    for threads in args.threads:
        torch.set_num_threads(threads)
        runs = {}
        for spec in args.models:
            kind, options = parse_spec(spec)
            if args.chunk_size and kind in ("astrosnn", "lif-snn"):
                options["chunk_size"] = args.chunk_size
            fixed = args.width if kind in ("astrosnn", "lif-snn", "linear-attention") else None
            model, width = make_model(kind, vocab, target, args.seq_len, options, fixed)
            model.to(args.device)
            opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
            ids = torch.randint(0, vocab, (args.batch, (args.steps + 1) * args.seq_len + 1), device=args.device)
            _, _, state = timed_steps(model, opt, ids, 1, args.seq_len, None)  # warm-up (numba load)
            runs[spec] = dict(model=model, opt=opt, ids=ids, state=state, width=width, wall=[], cpu=[])
        for _ in range(args.repeats):
            for r in runs.values():
                wall, cpu, r["state"] = timed_steps(
                    r["model"], r["opt"], r["ids"], args.steps, args.seq_len, r["state"]
                )
                tokens = args.batch * args.seq_len * args.steps
                r["wall"].append(tokens / wall)
                r["cpu"].append(tokens / cpu)
        for kind, r in runs.items():
            step_ms = 1e3 * args.batch * args.seq_len / statistics.median(r["wall"])
            row = {
                "model": kind,
                "threads": threads,
                "width": r["width"],
                "parameters": count_parameters(r["model"]),
                "tokens_per_s_wall": round(statistics.median(r["wall"])),
                "tokens_per_s_cpu": round(statistics.median(r["cpu"])),
                "wall_rounds": [round(v) for v in r["wall"]],
                "step_ms": round(step_ms, 1),
                "gemm_floor_ms": round(gemm_floor_ms(r["model"], args.batch * args.seq_len), 1),
            }
            results.append(row)
            print(json.dumps(row), flush=True)
    print(json.dumps({"config": vars(args), "versions": versions()}))
    if args.markdown:
        print("\n| model | threads | width | parameters | tokens/s (wall) | tokens/s per CPU-second | step ms | "
              "GEMM floor ms |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for r in results:
            print(
                f"| {r['model']} | {r['threads']} | {r['width']} | {r['parameters']:,} | "
                f"{r['tokens_per_s_wall']:,} | {r['tokens_per_s_cpu']:,} | {r['step_ms']} | {r['gemm_floor_ms']} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
