"""Memory tasks (issue 14): MQAR (Zoology), delayed recall, selective copying (Mamba); one resumable grid.

Every model trains for the same steps and batch size on freshly generated batches, is evaluated on a fixed
seeded test set every --eval-every steps, and each (task, cell, model, width, lr, seed) run is one JSON file
in OUT/runs/ (written atomically; a finished run is skipped when the command is run again, an unfinished
one continues from its last evaluation, checkpointed in OUT/runs/<run>.partial/, to the same result). With several --lrs each (task, model, width) is swept on the task's smallest cell (first
seed) and the best rate reused. Writes OUT/table.md and OUT/curves/*.png. See astrosnn.lm.task_runner.

    # the full grid (hours on a shared 2-core CPU; see RESULTS.md "Memory tasks")
    OMP_NUM_THREADS=1 python benchmarks/lm_tasks.py --out runs/tasks
    # a smoke run (a minute)
    python benchmarks/lm_tasks.py --quick --out runs/tasks-quick

Models: kind[:key=value...], e.g. astrosnn:memory=delta; kinds/options not in this checkout yet
(linear-attention, memory=...) are skipped with a note.
"""

from __future__ import annotations

import argparse
import sys

from astrosnn.errors import AstrosnnError
from astrosnn.lm.task_runner import GridSpec, run_task_grid

DEFAULT_MODELS = "astrosnn,astrosnn:memory=delta,astrosnn:memory=gated,lif-snn,lstm,transformer,linear-attention"


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x.strip())


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in text.split(",") if x.strip())


def _cells(text: str) -> tuple[tuple[int, int], ...]:
    out = []
    for item in text.split(","):
        if item.strip():
            T, _, P = item.strip().partition("x")
            out.append((int(T), int(P)))
    return tuple(out)


def build_spec(argv: list[str] | None = None) -> tuple[GridSpec, str, bool, bool]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", default="mqar,delayed,selective", help="comma list of mqar, delayed, selective")
    p.add_argument("--models", default=DEFAULT_MODELS)
    p.add_argument("--widths", default="64,128")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=None, help="default: each model's own")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lrs", default="1e-3,3e-3,1e-2", help="several: swept on each task's smallest cell")
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--mqar-cells", default="64x4,128x8,256x16", help="seq_len x pairs")
    p.add_argument("--mqar-vocab", type=int, default=256, help="Zoology uses 8192; 256 fits a CPU")
    p.add_argument("--delays", default="16,64,256,1024")
    p.add_argument("--selective-lengths", default="256", help="noise-region length L (T = L + 2 x 16)")
    p.add_argument("--test-examples", type=int, default=512)
    p.add_argument("--eval-every", type=int, default=None, help="default: steps / 10")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 on a shared CPU)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cuda (batches are made on the CPU)")
    p.add_argument("--out", default="runs/tasks")
    p.add_argument("--no-resume", action="store_true", help="run everything again")
    p.add_argument("--report-only", action="store_true",
                   help="train nothing: table and curves of the finished runs of this grid (missing ones listed)")
    p.add_argument("--quick", action="store_true",
                   help="smoke preset: mqar 64x4 + delay 16 + selective 32, 4 small models, 40 steps")
    a = p.parse_args(argv)
    if a.quick:
        a.tasks, a.models, a.widths, a.steps, a.batch_size = "mqar,delayed,selective", "astrosnn,lif-snn,lstm,transformer", "32", 40, 16
        a.lrs, a.seeds, a.mqar_cells, a.delays, a.selective_lengths = "3e-3", "0", "64x4", "16", "32"
        a.test_examples = 64
    spec = GridSpec(
        tasks=tuple(t.strip() for t in a.tasks.split(",") if t.strip()),
        models=tuple(m.strip() for m in a.models.split(",") if m.strip()),
        widths=_ints(a.widths), layers=a.layers, heads=a.heads, steps=a.steps, batch_size=a.batch_size,
        lrs=_floats(a.lrs), seeds=_ints(a.seeds), mqar_cells=_cells(a.mqar_cells), mqar_vocab=a.mqar_vocab,
        delays=_ints(a.delays), selective_lengths=_ints(a.selective_lengths), test_examples=a.test_examples,
        eval_every=a.eval_every, threads=a.threads, device=a.device,
    )  # fmt: skip
    return spec, a.out, not a.no_resume, not a.report_only


def main(argv: list[str] | None = None) -> int:
    try:
        spec, out, resume, train = build_spec(argv)
        run_task_grid(spec, out, resume=resume, log=lambda s: print(s, flush=True), train=train)
    except (AstrosnnError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
