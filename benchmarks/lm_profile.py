"""Where an LM's training step spends its time: torch.profiler over a few steps, grouped by operator.

Same models and batches as ``lm_speed.py`` (about ``--params`` parameters, random characters, state carried
and detached between batches). Prints each operator's share of the profiled CPU time and the share of matrix
products, then times the fused LIF scan's kernels directly over the same number of unprofiled steps: the
profiler charged 2-6x more time to the scan's forward than its kernels take when timed directly.

    python benchmarks/lm_profile.py --model astrosnn --threads 2
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from lm_speed import make_model, timed_steps
from torch.profiler import ProfilerActivity, profile

from astrosnn.lm import scan_numba as scan
from astrosnn.runinfo import seed_everything, versions

MATMULS = ("aten::mm", "aten::addmm", "aten::bmm")


def scan_kernel_seconds(run) -> tuple[float, dict[str, float]]:  # noqa: ANN001
    """Call ``run()`` with the numba scan's batch dispatcher timed; return (run's wall s, s per kernel)."""
    spent: dict[str, float] = {}
    dispatch = scan._over_batch

    def timed(kernel, batched, rest):  # noqa: ANN001, ANN202
        start = time.perf_counter()
        dispatch(kernel, batched, rest)
        name = kernel.__name__.strip("_").removesuffix("_kernel")
        spent[name] = spent.get(name, 0.0) + time.perf_counter() - start

    scan._over_batch = timed
    try:
        wall = run()
    finally:
        scan._over_batch = dispatch
    return wall, spent


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--model", default="astrosnn", choices=["astrosnn", "lif-snn", "lstm", "transformer"]
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--params", type=int, default=1_000_000)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--steps", type=int, default=10, help="profiled steps (after 3 warm-up steps)")
    p.add_argument("--rows", type=int, default=15, help="operators to list")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    seed_everything(args.seed)
    torch.set_num_threads(args.threads)
    vocab = 65
    model, width = make_model(args.model, vocab, args.params, args.seq_len, {})
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    ids = torch.randint(0, vocab, (args.batch, (args.steps + 4) * args.seq_len + 1))
    _, _, state = timed_steps(model, opt, ids, 3, args.seq_len, None)
    ids = ids[:, 3 * args.seq_len :]
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        wall, _, state = timed_steps(model, opt, ids, args.steps, args.seq_len, state)
    events = [e for e in prof.key_averages() if not e.key.startswith("autograd::engine")]
    total = sum(e.self_cpu_time_total for e in events)
    events.sort(key=lambda e: -e.self_cpu_time_total)
    tokens = args.batch * args.seq_len * args.steps
    print(
        f"{args.model}: width {width}, {args.threads} thread(s), {tokens / wall:,.0f} tokens/s while profiled"
    )
    print("| operator | calls per step | ms per step | share |")
    print("|---|---:|---:|---:|")
    for e in events[: args.rows]:
        ms = e.self_cpu_time_total / 1e3 / args.steps
        share = e.self_cpu_time_total / total
        print(f"| {e.key} | {e.count / args.steps:g} | {ms:.1f} | {share:.1%} |")

    matmul_share = sum(e.self_cpu_time_total for e in events if e.key in MATMULS) / total

    ids = torch.randint(0, vocab, (args.batch, args.steps * args.seq_len + 1))
    wall, spent = scan_kernel_seconds(
        lambda: timed_steps(model, opt, ids, args.steps, args.seq_len, state)[0]
    )
    step_ms = 1e3 * wall / args.steps
    kernel_ms = {name: round(1e3 * s / args.steps, 1) for name, s in spent.items()}
    scan_share = sum(spent.values()) / wall
    print(f"unprofiled: {step_ms:.0f} ms per step, {tokens / wall:,.0f} tokens/s; LIF scan kernels "
          f"{kernel_ms or 'none'} ms per step = {scan_share:.1%} of the step")  # fmt: skip
    print(json.dumps({
        "model": args.model, "threads": args.threads, "width": width, "step_ms": round(step_ms, 1),
        "matmul_share_profiled": round(matmul_share, 3), "scan_kernel_ms": kernel_ms,
        "scan_share": round(scan_share, 3), "config": vars(args), "versions": versions(),
    }))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
