"""Steps per second of the NALSM engine backends (1000-neuron liquid, MNIST rate-coded input).

    taskset -c 0 env OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python benchmarks/nalsm_engine_speed.py

Batch 1 is timed as phase 1 (20-ms samples, weights carried); batches > 1 as phase 2 (per-sample weights,
x0.99 decay). "sample-steps/s" = batch x steps / wall time. The first call of each backend (numba compile)
is excluded.

    python benchmarks/nalsm_engine_speed.py --suite [--json FILE]

The issue-13 suite, every backend side by side in one run on the same networks, weights and input spikes:
phase 2 samples/s at 1000 neurons (batch 32, 1 and 2 numba threads) and 8000 neurons (batch 64, 2 threads),
phase 1 ms per 20-ms sample (1 thread; x 50,000 = a full phase 1), and the peak RSS of an 8000-neuron phase 2
at batch 64 (a child process per backend). Phase 2 runs from the weights the timed phase 1 left ("fast",
exact). Backends are interleaved, each timed `--reps` times (best wall time kept).

    python benchmarks/nalsm_engine_speed.py --phase1-chunk 100 [--phase1-samples 300] [--json FILE]

Phase 1 in one piece (`run_phase1`) against the same samples in resumable pieces of N samples
(`run_phase1_chunk`, weights and traces chained, what a checkpointed run does), ms per 20-ms sample at 1000
neurons on one thread for each of `--suite-backends`, interleaved, best of `--reps`; checks the weights agree.
"""

from __future__ import annotations

import argparse
import json
import time

import torch


def input_rates(args, n: int) -> torch.Tensor:
    """Rate-code probabilities (n, 784) of the first n MNIST training images, or of random images."""
    from astrosnn.data.encoders import rate_probabilities
    from astrosnn.data.images import load_images

    if args.synthetic:
        pixels = torch.randint(0, 256, (n, 28, 28), generator=torch.Generator().manual_seed(0)).to(torch.uint8)
        return rate_probabilities(pixels.numpy())[0]
    return rate_probabilities(load_images("mnist", "train", data_dir=args.data_dir, limit=n).images)[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--grid", default="10x10x10")
    ap.add_argument("--batches", default="1,64,256")
    ap.add_argument("--backends", default="reference,fast")
    ap.add_argument("--steps", type=int, default=250, help="steps per phase-2 sample")
    ap.add_argument("--phase1-samples", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--max-seconds", type=float, default=40.0, help="cut a measurement's steps to about this")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--synthetic", action="store_true",
                    help="random 28x28 images instead of MNIST (a machine without the data; speed only)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--suite", action="store_true", help="the side-by-side issue-13 suite (see the docstring)")
    ap.add_argument("--suite-backends", default="fast,event,event64")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--phase1-large", type=int, default=20, help="phase-1 samples timed at 8000 neurons")
    ap.add_argument("--phase1-chunk", type=int, default=None, metavar="N",
                    help="phase 1 in one piece vs in pieces of N samples (see the docstring)")
    ap.add_argument("--rss-probe", default=None, help=argparse.SUPPRESS)  # internal: child process of --suite
    args = ap.parse_args()
    if args.rss_probe:
        return rss_probe(args)
    if args.phase1_chunk:
        return phase1_chunks(args)
    if args.suite:
        return suite(args)

    import numba

    from astrosnn.data.encoders import bernoulli_spikes
    from astrosnn.nalsm.engine import PlasticityConfig, extract_features, run_phase1
    from astrosnn.nalsm.topology import build_network
    from astrosnn.runinfo import versions

    torch.set_num_threads(args.threads)
    numba.set_num_threads(args.threads)
    grid = tuple(int(g) for g in args.grid.split("x"))
    net = build_network(grid, 784, seed=0)
    batches = [int(b) for b in args.batches.split(",")]
    probs = input_rates(args, max(max(batches), args.phase1_samples))
    gen = torch.Generator().manual_seed(0)
    cfg = PlasticityConfig(rule="astro")
    rows = []
    for backend in args.backends.split(","):
        # warm-up (numba compile, torch allocator)
        run_phase1(net, bernoulli_spikes(probs[:2], 20, gen), cfg, progress=False, backend=backend)
        extract_features(net, net.weight, bernoulli_spikes(probs[:2], 5, gen), cfg.phase2(), backend=backend)
        for batch in batches:
            if batch == 1:
                n = args.phase1_samples
                probe = max(2, n // 10)
                t0 = time.perf_counter()
                run_phase1(net, bernoulli_spikes(probs[:probe], 20, gen), cfg, progress=False, backend=backend)
                per = (time.perf_counter() - t0) / probe
                n = int(min(n, max(probe, args.max_seconds / per)))
                x = bernoulli_spikes(probs[:n], 20, gen)
                t0 = time.perf_counter()
                run_phase1(net, x, cfg, progress=False, backend=backend)
                wall = time.perf_counter() - t0
                steps, what = n * 20, f"phase 1: {n} samples x 20 ms"
            else:
                x = bernoulli_spikes(probs[:batch], args.steps, gen)
                t0 = time.perf_counter()
                extract_features(net, net.weight, x[:, :10], cfg.phase2(), backend=backend)
                per = (time.perf_counter() - t0) / 10
                steps = int(min(args.steps, max(10, args.max_seconds / per)))
                t0 = time.perf_counter()
                res = extract_features(net, net.weight, x[:, :steps], cfg.phase2(), backend=backend)
                wall = time.perf_counter() - t0
                what = f"phase 2: {batch} samples x {steps} ms, {res.counts.sum().item() / batch / steps:.1f} liquid spikes/ms"
            rows.append({"backend": backend, "batch": batch, "steps": steps, "wall_s": round(wall, 3),
                         "steps_per_s": round(steps / wall, 1), "sample_steps_per_s": round(batch * steps / wall, 1),
                         "what": what})
            print(json.dumps(rows[-1]), flush=True)
    info = {"grid": args.grid, "n_synapses": net.n_synapses, "threads": args.threads, "versions": versions()}
    print("\n| backend | batch | steps/s | sample-steps/s | wall s | run |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['backend']} | {r['batch']} | {r['steps_per_s']} | {r['sample_steps_per_s']} | {r['wall_s']} | {r['what']} |")
    print("\n" + json.dumps(info))
    if args.json:
        from astrosnn.runinfo import atomic_write_json

        atomic_write_json(args.json, {"rows": rows, **info})


def _phase2(net, w, x, backend):
    from astrosnn.nalsm.engine import PlasticityConfig, extract_features

    t0 = time.perf_counter()
    res = extract_features(net, w, x, PlasticityConfig(rule="astro").phase2(), backend=backend)
    return time.perf_counter() - t0, res


def rss_probe(args) -> None:
    """Child of --suite: one phase-2 batch from saved weights/inputs; prints wall time and peak RSS."""
    import resource

    import numba
    import numpy as np

    from astrosnn.nalsm.topology import build_network

    folder, backend = args.rss_probe.split(",")
    numba.set_num_threads(args.threads)
    net = build_network(tuple(int(g) for g in args.grid.split("x")), 784, seed=0)
    w = torch.from_numpy(np.load(f"{folder}/weights.npy"))
    x = torch.from_numpy(np.load(f"{folder}/inputs.npy"))
    _phase2(net, w, x[:2, :5], backend)  # compile / load the numba cache
    wall, res = _phase2(net, w, x, backend)
    print(json.dumps({"backend": backend, "wall_s": wall, "samples_per_s": x.shape[0] / wall,
                      "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "liquid_spikes_per_ms": res.counts.sum().item() / x.shape[0] / x.shape[1]}))


def phase1_chunks(args) -> None:
    import os

    import numba

    from astrosnn.data.encoders import bernoulli_spikes
    from astrosnn.nalsm.engine import PlasticityConfig, run_phase1, run_phase1_chunk
    from astrosnn.nalsm.topology import build_network
    from astrosnn.runinfo import versions

    torch.set_num_threads(1)
    numba.set_num_threads(1)
    backends = args.suite_backends.split(",")
    n, every = args.phase1_samples, args.phase1_chunk
    probs = input_rates(args, n)
    net = build_network(tuple(int(g) for g in args.grid.split("x")), 784, seed=0)
    p1 = bernoulli_spikes(probs[:n], 20, torch.Generator().manual_seed(0))
    cfg = PlasticityConfig(rule="astro")
    load0 = os.getloadavg()

    def pieces(b):
        w, x = None, None
        for lo in range(0, n, every):
            w, x = run_phase1_chunk(net, p1[lo:lo + every], cfg, w, x, backend=b)
        return w

    runs = {"one piece": lambda b: run_phase1(net, p1, cfg, progress=False, backend=b),
            f"pieces of {every}": pieces}
    for b in backends:  # warm-up (numba compile / cache load)
        run_phase1(net, p1[:2], cfg, progress=False, backend=b)
        run_phase1_chunk(net, p1[:2], cfg, None, None, backend=b)
    best: dict[tuple[str, str], float] = {}
    weights: dict[tuple[str, str], torch.Tensor] = {}
    for _ in range(args.reps):
        for b in backends:
            for how, fn in runs.items():
                t0 = time.perf_counter()
                weights[b, how] = fn(b)
                wall = time.perf_counter() - t0
                best[b, how] = min(best.get((b, how), wall), wall)
    rows = []
    for b in backends:
        one, chunked = (best[b, how] * 1e3 / n for how in runs)
        rows.append({"backend": b, "samples": n, "chunk": every, "one_piece_ms": round(one, 2),
                     "pieces_ms": round(chunked, 2), "pieces_vs_one": round(chunked / one, 3),
                     "weights_equal": bool(torch.equal(*(weights[b, how] for how in runs)))})
        print(json.dumps(rows[-1]), flush=True)
    info = {"grid": args.grid, "n_synapses": net.n_synapses, "load_start": load0, "load_end": os.getloadavg(),
            "reps": args.reps, "versions": versions()}
    print(f"\n| backend | one piece ms/sample | pieces of {every} ms/sample | pieces / one | weights equal |"
          "\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['backend']} | {r['one_piece_ms']} | {r['pieces_ms']} | {r['pieces_vs_one']} | {r['weights_equal']} |")
    print("\n" + json.dumps(info))
    if args.json:
        from astrosnn.runinfo import atomic_write_json

        atomic_write_json(args.json, {"rows": rows, **info})


def suite(args) -> None:
    import os
    import subprocess
    import sys
    import tempfile

    import numba
    import numpy as np

    from astrosnn.data.encoders import bernoulli_spikes
    from astrosnn.nalsm.engine import PlasticityConfig, run_phase1
    from astrosnn.nalsm.topology import build_network
    from astrosnn.runinfo import versions

    torch.set_num_threads(1)
    backends = args.suite_backends.split(",")
    probs = input_rates(args, max(64, args.phase1_samples))
    cfg = PlasticityConfig(rule="astro")
    rows: list[dict] = []
    load0 = os.getloadavg()

    def row(**kw) -> None:
        rows.append(kw)
        print(json.dumps(kw), flush=True)

    for grid, batch, threads_list, n_p1 in (("10x10x10", 32, (1, 2), args.phase1_samples),
                                            ("20x20x20", 64, (2,), args.phase1_large)):
        net = build_network(tuple(int(g) for g in grid.split("x")), 784, seed=0)
        gen = torch.Generator().manual_seed(0)
        p1 = bernoulli_spikes(probs[:n_p1], 20, gen)
        x = bernoulli_spikes(probs[:batch], args.steps, gen)
        numba.set_num_threads(1)
        w1 = {}
        for b in backends:  # warm-up (numba compile / cache load), then phase 1 on one thread
            run_phase1(net, p1[:2], cfg, progress=False, backend=b)
            _phase2(net, net.weight, x[:2, :5], b)
        for b in backends:
            t0 = time.perf_counter()
            w1[b] = run_phase1(net, p1, cfg, progress=False, backend=b)
            ms = (time.perf_counter() - t0) / n_p1 * 1e3
            row(grid=grid, phase=1, backend=b, threads=1, samples=n_p1, ms_per_sample=round(ms, 2),
                full_phase1_min=round(ms * 50_000 / 6e4, 1), load=os.getloadavg()[0],
                weights_equal_fast=bool(torch.equal(w1[b], w1.get("fast", w1[b]))))
        w = w1["fast" if "fast" in w1 else backends[0]]
        for threads in threads_list:
            numba.set_num_threads(threads)
            best: dict[str, float] = {}
            counts = {}
            for _ in range(args.reps):
                for b in backends:
                    wall, res = _phase2(net, w, x, b)
                    best[b] = min(best.get(b, wall), wall)
                    counts[b] = res.counts
            ref = counts.get("fast")
            for b in backends:
                row(grid=grid, phase=2, backend=b, threads=threads, batch=batch, steps=args.steps,
                    samples_per_s=round(batch / best[b], 1), wall_s=round(best[b], 2),
                    vs_fast=round(best.get("fast", best[b]) / best[b], 2), load=os.getloadavg()[0],
                    liquid_spikes_per_ms=round(counts[b].sum().item() / batch / args.steps, 1),
                    counts_equal_fast=None if ref is None else round((counts[b] == ref).float().mean().item(), 5))
        if grid == "20x20x20":
            with tempfile.TemporaryDirectory() as tmp:
                np.save(f"{tmp}/weights.npy", w.numpy())
                np.save(f"{tmp}/inputs.npy", x.numpy())
                for b in backends:
                    out = subprocess.run([sys.executable, __file__, "--grid", grid, "--threads", "2",
                                          "--rss-probe", f"{tmp},{b}"], capture_output=True, text=True, check=True)
                    probe = json.loads(out.stdout.strip().splitlines()[-1])
                    row(grid=grid, phase="2 (child, peak RSS)", backend=b, threads=2, batch=batch,
                        samples_per_s=round(probe["samples_per_s"], 1), max_rss_mb=round(probe["max_rss_mb"]),
                        load=os.getloadavg()[0])
    info = {"versions": versions(), "load_start": load0, "load_end": os.getloadavg(), "args": vars(args)}
    print("\n| liquid | phase | backend | threads | batch | samples/s | x fast | ms/sample (50k: min) | peak RSS MB |"
          " counts = fast | load |\n|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        p1 = f"{r['ms_per_sample']} ({r['full_phase1_min']})" if r["phase"] == 1 else ""
        print(f"| {r['grid']} | {r['phase']} | {r['backend']} | {r['threads']} | {r.get('batch', 1)} | "
              f"{r.get('samples_per_s', '')} | {r.get('vs_fast', '')} | {p1} | {r.get('max_rss_mb', '')} | "
              f"{r.get('counts_equal_fast', r.get('weights_equal_fast', ''))} | {r['load']:.1f} |")
    print("\n" + json.dumps(info))
    if args.json:
        from astrosnn.runinfo import atomic_write_json

        atomic_write_json(args.json, {"rows": rows, **info})


if __name__ == "__main__":
    from astrosnn.errors import AstrosnnError

    try:
        main()
    except AstrosnnError as err:
        raise SystemExit(f"error: {err}") from None
