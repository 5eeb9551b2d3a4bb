"""Per-token decode latency and state memory against context length (one thread, batch 1).

Recurrent models (AstroSNN, LIF-SNN, LSTM) carry a fixed-size state, so the cost of one more token does
not grow with the context; the Transformer's KV cache (and attention over it) grows with it.

    OMP_NUM_THREADS=1 taskset -c 1 python benchmarks/lm_decode.py --contexts 64,256,1024
"""

from __future__ import annotations

import argparse
import time

import torch

from astrosnn.lm import build_model, count_parameters, model_kinds, width_for_parameters
from astrosnn.lm.state import flatten_state

MODEL_KINDS = model_kinds()


def state_bytes(state) -> int:
    return sum(t.numel() * t.element_size() for t in flatten_state(state) if t is not None)


@torch.no_grad()
def measure(model, context: int, vocab: int, tokens: int) -> tuple[float, int]:
    ids = torch.randint(0, vocab, (1, context))
    _, state = model(ids)
    step = getattr(model, "step", None)
    x = torch.randint(0, vocab, (1,))
    for _ in range(3):  # warm-up, state not kept so the context stays fixed
        step(x, state) if step else model(x.view(1, 1), state)
    t0 = time.perf_counter()
    for _ in range(tokens):
        step(x, state) if step else model(x.view(1, 1), state)
    return (time.perf_counter() - t0) / tokens * 1e3, state_bytes(state)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=",".join(MODEL_KINDS))
    p.add_argument("--contexts", default="64,256,1024")
    p.add_argument("--params", type=int, default=1_000_000)
    p.add_argument("--vocab", type=int, default=65)
    p.add_argument("--tokens", type=int, default=50, help="timed tokens per point")
    args = p.parse_args()
    torch.set_num_threads(1)
    contexts = [int(c) for c in args.contexts.split(",")]
    print("| model | parameters | " + " | ".join(f"ms/token @ {c}" for c in contexts) + " | "
          + " | ".join(f"state KiB @ {c}" for c in contexts) + " |")
    print("|---|---:|" + "---:|" * (2 * len(contexts)))
    for kind in args.models.split(","):
        opts = {"layers": 2 if kind == "lstm" else 4, "heads": 4, "seq_len": max(contexts) + 1}
        width = width_for_parameters(kind, args.vocab, args.params, **opts)
        torch.manual_seed(0)
        model = build_model(kind, args.vocab, width=width, **opts).eval()
        lat, mem = zip(*(measure(model, c, args.vocab, args.tokens) for c in contexts))
        print(f"| {kind} | {count_parameters(model):,} | " + " | ".join(f"{v:.2f}" for v in lat) + " | "
              + " | ".join(f"{m / 1024:.0f}" for m in mem) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
