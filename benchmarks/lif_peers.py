"""A spiking layer (Linear + LIF) forward + backward: astrosnn against Norse, SpikingJelly and snnTorch.

Every contender gets the same layer: ``spikes = LIF(W x + b)`` over ``T`` steps for a batch, then
``(spikes * g).sum()`` with a fixed random ``g`` backwards (a dense upstream gradient, as in a network), and
the time of forward + backward (+ zeroing grads) is taken; rounds interleave the contenders, the figure is the
median. The Linear is applied once over all ``B * T`` rows (one GEMM, identical for everyone); the neurons
run in each library's own form:

- ``astrosnn``: :class:`astrosnn.lm.spiking.SpikingLIF` (the fused numba scan on the CPU, Triton on CUDA),
  layout ``(B, T, n)``; hard reset to 0 with the reset's gradient cut, ``u = beta u (1 - s) + I``,
  arctan surrogate.
- ``norse-box``: ``norse.torch.LIFBoxCell`` looped over time (a LIF without synaptic current; Euler step
  ``v += dt tau_mem_inv (v_leak - v + I)``, reset to ``v_reset``, SuperSpike surrogate; gradient through reset).
- ``norse-lif``: ``norse.torch.LIF`` (with a synaptic current; the module loops over time itself).
- ``spikingjelly``: ``activation_based.neuron.LIFNode`` multi-step (``step_mode="m"``; its torch
  path on the CPU), ``tau = 10`` (``v += (I - v) / tau``), hard reset, ``detach_reset=True``, ATan surrogate.
- ``snntorch``: ``snntorch.Leaky`` looped (``beta = 0.9``, ``reset_mechanism="zero"``, ATan surrogate;
  gradient through reset).
- ``eager``: a minimal eager PyTorch loop (``u = beta u (1 - s.detach()) + I``, arctan surrogate through a
  custom autograd function): what a user writes by hand.

The looped contenders iterate over ``cur.unbind(0)`` (one backward node; ``cur[t]`` in the loop would build
``T`` full-size gradient tensors and was 3-4x slower here). Decays and thresholds differ slightly between libraries (their own parameterisations), which changes spike
counts but not the work per step.

    python benchmarks/lif_peers.py                       # both shapes, all contenders installed
    python benchmarks/lif_peers.py --neuron-only           # the neurons alone (the Linear is the same GEMM for all)
    python benchmarks/lif_peers.py --device cuda --rounds 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from torch import nn

from astrosnn.core.surrogate import get_surrogate
from astrosnn.lm.spiking import SpikingLIF
from astrosnn.runinfo import versions

SHAPES = ((1024, 256, 16), (4096, 128, 8))  # (n, T, batch)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def contender_astrosnn(n: int, device: str):  # noqa: ANN201
    lif = SpikingLIF(n, beta_init=0.9, surrogate="arctan", reset="cut").to(device)
    return "btn", lambda cur: lif(cur)[0], list(lif.parameters())


def contender_eager(n: int, device: str):  # noqa: ANN201
    surrogate = get_surrogate("arctan")
    beta = torch.full((n,), 0.9, device=device)

    def run(cur):  # noqa: ANN001, ANN202  (T, B, n)
        u = torch.zeros_like(cur[0])
        s = torch.zeros_like(cur[0])
        out = []
        for x in cur.unbind(0):  # unbind: one backward node (indexing cur[t] makes T full-size gradients)
            u = beta * u * (1 - s.detach()) + x
            s = surrogate(u - 1.0)
            out.append(s)
        return torch.stack(out)

    return "tbn", run, []


def contender_norse_box(n: int, device: str):  # noqa: ANN201
    from norse.torch import LIFBoxCell

    cell = LIFBoxCell().to(device)

    def run(cur):  # noqa: ANN001, ANN202
        state, out = None, []
        for x in cur.unbind(0):
            z, state = cell(x, state)
            out.append(z)
        return torch.stack(out)

    return "tbn", run, []


def contender_norse_lif(n: int, device: str):  # noqa: ANN201
    from norse.torch import LIF

    lif = LIF().to(device)
    return "tbn", lambda cur: lif(cur)[0], []


def contender_spikingjelly(n: int, device: str):  # noqa: ANN201
    from spikingjelly.activation_based import functional, neuron, surrogate

    node = neuron.LIFNode(tau=10.0, detach_reset=True, surrogate_function=surrogate.ATan(),
                          step_mode="m").to(device)  # fmt: skip

    def run(cur):  # noqa: ANN001, ANN202
        functional.reset_net(node)
        return node(cur)

    return "tbn", run, []


def contender_snntorch(n: int, device: str):  # noqa: ANN201
    import snntorch
    from snntorch import surrogate

    leaky = snntorch.Leaky(beta=0.9, reset_mechanism="zero", spike_grad=surrogate.atan()).to(device)

    def run(cur):  # noqa: ANN001, ANN202
        mem = leaky.init_leaky()
        out = []
        for x in cur.unbind(0):
            spk, mem = leaky(x, mem)
            out.append(spk)
        return torch.stack(out)

    return "tbn", run, []


CONTENDERS = {
    "astrosnn": contender_astrosnn,
    "eager": contender_eager,
    "norse-box": contender_norse_box,
    "norse-lif": contender_norse_lif,
    "spikingjelly": contender_spikingjelly,
    "snntorch": contender_snntorch,
}


def make_case(name: str, n: int, T: int, B: int, device: str, neuron_only: bool = False):  # noqa: ANN201
    layout, neuron, params = CONTENDERS[name](n, device)
    torch.manual_seed(0)
    shape = (B, T, n) if layout == "btn" else (T, B, n)
    x = torch.rand(shape, device=device, requires_grad=neuron_only)
    g = torch.randn(shape, device=device)
    if neuron_only:  # the neurons alone: input currents that need a gradient, no Linear
        linear = nn.Identity()
        params = [x] + params
    else:
        linear = nn.Linear(n, n).to(device)
        params = list(linear.parameters()) + params

    def once() -> tuple[float, float]:
        for p in params:
            p.grad = None
        _sync(device)
        t0 = time.perf_counter()
        spikes = neuron(linear(x))
        _sync(device)
        t1 = time.perf_counter()
        (spikes * g).sum().backward()
        _sync(device)
        t2 = time.perf_counter()
        return t1 - t0, t2 - t0

    return once


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--contenders", default=",".join(CONTENDERS))
    p.add_argument("--shapes", default="1024x256x16,4096x128x8", help="n x T x batch, comma-separated")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--neuron-only", action="store_true", help="time the LIF neurons alone (no Linear)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]
    rows = []
    for n, T, B in shapes:
        cases = {}
        for name in args.contenders.split(","):
            try:
                cases[name] = make_case(name, n, T, B, args.device, args.neuron_only)
                cases[name]()  # warm-up (numba load, allocations)
            except ImportError as e:
                print(f"# {name}: not installed ({e})")
                cases.pop(name, None)
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
        for _ in range(args.rounds):
            for name, once in cases.items():
                times[name].append(once())
        for name, ts in times.items():
            row = {"n": n, "T": T, "batch": B, "contender": name, "threads": torch.get_num_threads(),
                   "device": args.device, "forward_s": statistics.median(t[0] for t in ts),
                   "forward_backward_s": statistics.median(t[1] for t in ts)}  # fmt: skip
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(json.dumps({"config": vars(args), "versions": versions()}))
    print("\n| n x T x batch | contender | forward s | forward + backward s | vs fastest peer |")
    print("|---|---|---:|---:|---:|")
    for n, T, B in shapes:
        these = [r for r in rows if (r["n"], r["T"], r["batch"]) == (n, T, B)]
        peers = [r["forward_backward_s"] for r in these if r["contender"] not in ("astrosnn", "eager")]
        best = min(peers) if peers else float("nan")
        for r in these:
            print(f"| {n} x {T} x {B} | {r['contender']} | {r['forward_s']:.3f} | {r['forward_backward_s']:.3f} | "
                  f"{r['forward_backward_s'] / best:.2f}x |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
