"""Operations and energy per token: spike-driven accumulates (AC) vs multiply-accumulates (MAC), 45 nm figures.

Spike rates come from trained runs (``metrics.json`` ``spike_rates``, written by ``astrosnn lm train``) of
AstroSNN and LIF-SNN; the LSTM and Transformer are built at the AstroSNN run's parameter count. Energy =
0.9 pJ * AC + 4.6 pJ * MAC (Horowitz 2014, 32-bit float); see :mod:`astrosnn.lm.energy` for what is counted.

    astrosnn lm train --model astrosnn --params 1000000 --steps 100 --out /tmp/en_astrosnn --threads 1
    astrosnn lm train --model lif-snn  --params 1000000 --steps 100 --out /tmp/en_lif-snn  --threads 1
    python benchmarks/lm_energy.py --runs /tmp/en_astrosnn /tmp/en_lif-snn
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from astrosnn.lm import build_model, count_parameters, width_for_parameters
from astrosnn.lm.checkpoint import load_checkpoint
from astrosnn.lm.energy import energy_pj, op_counts


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", nargs="+", required=True, help="run folders of spiking models (metrics.json + model)")
    p.add_argument("--context", type=int, default=128, help="the Transformer's attention span per token")
    p.add_argument("--products", action="store_true", help="list every product of each model")
    args = p.parse_args()
    rows = []
    target, vocab = None, None
    for run in args.runs:
        ckpt = load_checkpoint(run)
        model = ckpt.model
        rates = json.loads((Path(run) / "metrics.json").read_text())["spike_rates"] or {}
        target = target or count_parameters(model)
        vocab = model.config.vocab_size
        rows.append((model.kind, count_parameters(model), rates, op_counts(model, rates, args.context)))
    for kind, layers in (("lstm", 2), ("transformer", 4)):
        opts = {"layers": layers, "seq_len": args.context} | ({"heads": 4} if kind == "transformer" else {})
        width = width_for_parameters(kind, vocab, target, **opts)
        model = build_model(kind, vocab, width=width, **opts)
        rows.append((kind, count_parameters(model), {}, op_counts(model, None, args.context)))
    print("| model | parameters | mean spike rate (AM-SU / MLP) | MAC per token | AC per token | energy per token (nJ) |")
    print("|---|---:|---|---:|---:|---:|")
    for kind, params, rates, products in rows:
        t = energy_pj(products)
        amsu = [v for k, v in rates.items() if k.endswith("amsu")]
        mlp = [v for k, v in rates.items() if k.endswith("mlp")]
        rate = (f"{sum(amsu) / len(amsu):.3f} / {sum(mlp) / len(mlp):.3f}" if amsu else
                f"- / {sum(mlp) / len(mlp):.3f}" if mlp else "-")  # fmt: skip
        print(f"| {kind} | {params:,} | {rate} | {t['mac']:,.0f} | {t['ac']:,.0f} | {t['energy_pj'] / 1e3:.2f} |")
    for kind, _, rates, products in rows:
        if rates:
            print(f"\n{kind} spike rates per layer: " + ", ".join(f"{k} {v:.3f}" for k, v in rates.items()))
        if args.products:
            print(f"\n| {kind}: product | kind | ops per token | note |\n|---|---|---:|---|")
            for r in products:
                print(f"| {r['product']} | {r['kind'].upper()} | {r['ops']:,.0f} | {r['note']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
