"""The memory-task harness: one grid of (task, cell, model, width, learning rate, seed) runs, resumable.

:func:`run_task_grid` trains every model of a :class:`GridSpec` on every task cell at equal budgets (the same
steps and batch size for all), evaluates each on a fixed seeded test set every ``eval_every`` steps (the
learning curve), and writes one JSON file per run, atomically, to ``<out>/runs/``; then ``table.md`` and
learning-curve PNGs (``<out>/curves/``). ``benchmarks/lm_tasks.py`` is its command line.

Protocol (issue 14; see also the "Memory benchmark protocol" of the AM-SU spec):

- tasks: ``mqar`` (:func:`astrosnn.lm.tasks.zoology_mqar`, cells ``(seq_len, pairs)``), ``delayed``
  (:func:`astrosnn.lm.tasks.delayed_recall`, cells = delays), ``selective``
  (:func:`astrosnn.lm.tasks.selective_copying`, cells = lengths);
- training: a freshly generated batch every step (infinite data; Zoology trains on a fixed set for epochs,
  which these CPUs cannot afford), AdamW with the library's warm-up + cosine schedule and parameter groups
  (:func:`astrosnn.lm.training.make_optimizer`, :func:`~astrosnn.lm.training.learning_rate`), gradient norm
  clipped to 1.0; the loss is the cross-entropy on the scored positions only;
- learning rate: with several ``lrs``, each (task, model, width) is swept on the task's first (smallest)
  cell with the first seed; the best final test accuracy (ties: lower test loss) is reused for every other
  cell and seed. With one ``lrs`` value there is no sweep;
- resume: a run whose result file exists (same settings) is skipped; an unfinished run continues from its
  last evaluation (:mod:`astrosnn.lm.task_checkpoint`, ``<out>/runs/<run>.partial/``) and ends with the
  result an uninterrupted run gives.

Models are given as ``kind`` or ``kind:key=value[:key=value]`` (options passed to ``build_model``). A kind
or option value announced by issue 14 but not yet in this checkout (:data:`PENDING_KINDS`, :data:`PENDING_OPTIONS`:
``linear-attention``, ``memory=delta``, ``memory=gated``) is skipped with a note; any other unknown kind,
option or value is an error.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import math
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch

from astrosnn.errors import AstrosnnError
from astrosnn.lm.registry import build_model, count_parameters, make_config, model_kinds
from astrosnn.lm.task_checkpoint import (
    discard_progress,
    load_task_progress,
    partial_dir,
    save_task_progress,
)
from astrosnn.lm.tasks import (
    TaskBatch,
    delayed_recall,
    masked_loss,
    selective_copying,
    zoology_mqar,
)
from astrosnn.lm.training import TrainConfig, learning_rate, make_optimizer
from astrosnn.runinfo import atomic_write_bytes, atomic_write_json, seed_everything, versions

__all__ = ["GridSpec", "ModelChoice", "PENDING_KINDS", "PENDING_OPTIONS", "TASKS", "parse_models",
           "plan_cells", "run_task_grid", "write_table", "write_curves"]  # fmt: skip

TASKS = ("mqar", "delayed", "selective")
PENDING_KINDS = frozenset({"linear-attention"})  # issue 14 models another branch adds
PENDING_OPTIONS = {"memory": frozenset({"delta", "gated"})}  # astrosnn:memory=delta / gated, another branch adds
TEST_SEED = 1_000_003  # the fixed test set of a cell: the same for every model, learning rate and seed
RESULT_VERSION = 1


@dataclass
class GridSpec:
    """Everything a grid depends on. Cells: ``mqar_cells`` (seq_len, pairs), ``delays``, ``selective_lengths``."""

    tasks: tuple[str, ...] = TASKS
    models: tuple[str, ...] = ("astrosnn", "lif-snn", "lstm", "transformer")
    widths: tuple[int, ...] = (64, 128)
    layers: int = 2
    heads: int | None = None  # None: each model's default
    steps: int = 1000
    batch_size: int = 32
    lrs: tuple[float, ...] = (1e-3, 3e-3, 1e-2)
    seeds: tuple[int, ...] = (0, 1)
    mqar_cells: tuple[tuple[int, int], ...] = ((64, 4), (128, 8), (256, 16))
    mqar_vocab: int = 256
    delays: tuple[int, ...] = (16, 64, 256, 1024)
    delayed_length: int = 8
    delayed_symbols: int = 16
    selective_lengths: tuple[int, ...] = (256,)
    selective_tokens: int = 16
    selective_vocab: int = 16
    test_examples: int = 512
    eval_every: int | None = None  # None: 10 evaluations a run
    warmup_steps: int = 50  # capped at steps // 10 by the schedule
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    threads: int | None = 1
    device: str = "cpu"  # batches are generated on the CPU and moved here

    def __post_init__(self) -> None:
        for t in self.tasks:
            if t not in TASKS:
                raise AstrosnnError(f"unknown task {t!r} (choose from {', '.join(TASKS)})")
        for name in ("steps", "batch_size", "layers", "test_examples"):
            if getattr(self, name) < 1:
                raise AstrosnnError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lrs or any(not lr > 0 for lr in self.lrs):
            raise AstrosnnError(f"learning rates must be > 0, got {list(self.lrs)}")
        if not self.seeds or not self.widths or not self.models:
            raise AstrosnnError("give at least one seed, width and model")


@dataclass(frozen=True)
class ModelChoice:
    """One model column: a registered kind and its options; `label` as given (``astrosnn:memory=delta``)."""

    label: str
    kind: str
    options: dict[str, Any] = field(default_factory=dict, hash=False)

    @property
    def slug(self) -> str:
        return re.sub(r"[^A-Za-z0-9.=_-]+", "+", self.label)


def _value(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return {"true": True, "false": False, "none": None}.get(text.lower(), text)


def parse_models(specs, vocab_size: int = 64, log: Callable[[str], None] = print) -> list[ModelChoice]:
    """``kind[:key=value...]`` strings -> the buildable choices. Pending ones are skipped with a note
    (`log`); anything else unknown raises a one-line AstrosnnError."""
    chosen = []
    for spec in specs:
        spec = spec.strip()
        if not spec:
            continue
        kind, *rest = spec.split(":")
        options = {}
        for item in rest:
            key, eq, val = item.partition("=")
            if not eq or not key:
                raise AstrosnnError(f"model {spec!r}: options are key=value, got {item!r}")
            options[key.strip()] = _value(val.strip())
        if kind not in model_kinds():
            if kind in PENDING_KINDS:
                log(f"note: skipping {spec!r}: model kind {kind!r} is not in this checkout yet")
                continue
            raise AstrosnnError(f"unknown model {kind!r} in {spec!r} (choose from {', '.join(model_kinds())})")
        try:
            make_config(kind, vocab_size, **options)
        except AstrosnnError as e:
            if any(str(options.get(k)) in values for k, values in PENDING_OPTIONS.items()):
                log(f"note: skipping {spec!r}: not buildable in this checkout yet ({e})")
                continue
            raise AstrosnnError(f"model {spec!r}: {e}") from None
        chosen.append(ModelChoice(spec, kind, options))
    if not chosen:
        raise AstrosnnError("no buildable model in the list")
    return chosen


@dataclass(frozen=True)
class Cell:
    """One task setting: its generator (batch_size, generator) -> TaskBatch, sequence length and name."""

    task: str
    name: str  # "64x4", "delay256", "L256"
    seq_len: int
    make: Callable[..., TaskBatch] = field(hash=False, compare=False)
    params: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


def plan_cells(spec: GridSpec) -> dict[str, list[Cell]]:
    """The cells of each task, smallest first (the first is the learning-rate sweep's)."""
    cells: dict[str, list[Cell]] = {}
    for task in spec.tasks:
        if task == "mqar":
            cells[task] = [
                Cell(task, f"{T}x{P}", T, partial(zoology_mqar, seq_len=T, pairs=P, vocab_size=spec.mqar_vocab),
                     {"seq_len": T, "pairs": P, "vocab_size": spec.mqar_vocab, "power_a": 0.01})
                for T, P in sorted(spec.mqar_cells)
            ]  # fmt: skip
        elif task == "delayed":
            L, S = spec.delayed_length, spec.delayed_symbols
            cells[task] = [
                Cell(task, f"delay{d}", 2 * L + d, partial(delayed_recall, delay=d, length=L, symbols=S),
                     {"delay": d, "length": L, "symbols": S})
                for d in sorted(spec.delays)
            ]  # fmt: skip
        else:
            M, A = spec.selective_tokens, spec.selective_vocab
            cells[task] = [
                Cell(task, f"L{n}", n + 2 * M, partial(selective_copying, length=n, tokens=M, vocab_size=A),
                     {"length": n, "tokens": M, "vocab_size": A})
                for n in sorted(spec.selective_lengths)
            ]  # fmt: skip
        for c in cells[task]:  # fail early on a bad cell
            c.make(1, generator=torch.Generator().manual_seed(0))
    return cells


def _run_id(cell: Cell, model: ModelChoice, width: int, lr: float, seed: int) -> str:
    return f"{cell.task}-{cell.name}-{model.slug}-w{width}-lr{lr:g}-s{seed}"


def _settings(spec: GridSpec, cell: Cell, model: ModelChoice, width: int, lr: float, seed: int) -> dict[str, Any]:
    """What a result depends on; a stored result with other settings is run again."""
    return {"version": RESULT_VERSION, "task": cell.task, "cell": cell.name, "task_params": cell.params,
            "model": model.label, "kind": model.kind, "options": model.options, "width": width,
            "layers": spec.layers, "heads": spec.heads, "lr": lr, "seed": seed, "steps": spec.steps,
            "batch_size": spec.batch_size, "test_examples": spec.test_examples,
            "warmup_steps": spec.warmup_steps, "device": spec.device, "weight_decay": spec.weight_decay, "grad_clip": spec.grad_clip}  # fmt: skip


def _read_done(path: Path, settings: dict[str, Any]) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        r = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if r.get("status") != "done" or r.get("settings") != json.loads(json.dumps(settings)):
        return None
    return r


@torch.no_grad()
def _evaluate(model: torch.nn.Module, test: TaskBatch, chunk: int = 64,
              device: str = "cpu") -> tuple[float, float, list[float]]:  # fmt: skip
    """(accuracy, loss, accuracy by answer index) over the scored positions of the test set, in chunks.

    The answer index of a scored position is its rank among its sequence's scored positions (the k-th recalled
    symbol, the k-th query): where a model fails, it shows which answers it gets and which it does not."""
    model.eval()
    loss = 0.0
    hits_by = torch.zeros(test.mask.shape[1], dtype=torch.float64)
    seen_by = torch.zeros_like(hits_by)
    for i in range(0, test.inputs.shape[0], chunk):
        part = TaskBatch(*(t[i : i + chunk].to(device) for t in test[:3]), test.vocab_size, test.chance)
        logits = model(part.inputs)[0].float()
        rank = (part.mask.long().cumsum(dim=1) - 1)[part.mask].cpu()
        right = (logits[part.mask].argmax(-1) == part.targets[part.mask]).double().cpu()
        hits_by.index_add_(0, rank, right)
        seen_by.index_add_(0, rank, torch.ones_like(right))
        loss += float(masked_loss(logits, part)) * int(part.mask.sum())
    model.train()
    count = float(seen_by.sum())
    answers = int((seen_by > 0).sum())
    by_index = (hits_by[:answers] / seen_by[:answers].clamp_min(1)).tolist()
    return float(hits_by.sum()) / count, loss / count, by_index


def train_one(spec: GridSpec, cell: Cell, model_choice: ModelChoice, width: int, lr: float, seed: int,
              log: Callable[[str], None] = print, checkpoint: Path | None = None,
              settings: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """Train and evaluate one run; returns its result dict (not yet written).

    ``checkpoint``: a folder to save progress to at every evaluation and to resume from (with ``settings`` as
    its fingerprint); the resumed run gives the uninterrupted run's result."""
    wall0 = time.perf_counter()
    test = cell.make(spec.test_examples, generator=torch.Generator().manual_seed(TEST_SEED))
    options = {"width": width, "layers": spec.layers, "heads": spec.heads, "seq_len": cell.seq_len,
               **model_choice.options}  # fmt: skip
    cfg = TrainConfig(model=model_choice.kind, steps=spec.steps, batch_size=spec.batch_size, lr=lr,
                      warmup_steps=spec.warmup_steps, weight_decay=spec.weight_decay, grad_clip=spec.grad_clip,
                      seq_len=cell.seq_len, seed=seed)  # fmt: skip
    fingerprint = json.loads(json.dumps(settings)) if settings is not None else {}

    def fresh() -> tuple[torch.nn.Module, torch.optim.Optimizer, torch.Generator]:
        seed_everything(seed)
        net = build_model(model_choice.kind, test.vocab_size, **options).to(spec.device)
        return net, make_optimizer(net, cfg), torch.Generator().manual_seed(seed)

    model, optimizer, train_gen = fresh()
    every = spec.eval_every or max(1, spec.steps // 10)
    curve: list[dict[str, Any]] = []
    train_time, wall_before, losses, start = 0.0, 0.0, [], 0
    if checkpoint is not None:
        found = load_task_progress(checkpoint, model, optimizer, train_gen, fingerprint, spec.batch_size, log=log)
        if found is None:
            if checkpoint.exists():
                discard_progress(checkpoint)
                model, optimizer, train_gen = fresh()
        else:
            start, losses, curve = found["step"], list(found["train_loss"]), list(found["curve"])
            train_time, wall_before = found["elapsed_train"], found["wall_before"]
            log(f"  resumed at step {start}")
    model.train()
    for step in range(start, spec.steps):
        t0 = time.perf_counter()
        batch = cell.make(spec.batch_size, generator=train_gen)
        batch = TaskBatch(*(t.to(spec.device) for t in batch[:3]), batch.vocab_size, batch.chance)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(cfg, step, 0.0)
        logits = model(batch.inputs)[0]
        loss = masked_loss(logits.float(), batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), spec.grad_clip)
        optimizer.step()
        train_time += time.perf_counter() - t0
        value = float(loss.detach())
        losses.append(value)
        if not math.isfinite(value):
            log(f"  diverged at step {step} (loss {value})")
            break
        done = step + 1
        if done % every == 0 or done == spec.steps:
            acc, test_loss, by_index = _evaluate(model, test, device=spec.device)
            window = losses[-every:]
            curve.append({"step": done, "test_accuracy": acc, "test_loss": test_loss,
                          "train_loss": sum(window) / len(window), "train_time_s": train_time,
                          "accuracy_by_answer": [round(v, 4) for v in by_index]})  # fmt: skip
            if checkpoint is not None and done < spec.steps:
                save_task_progress(checkpoint, model, optimizer, step=done, tokens=done * spec.batch_size * cell.seq_len,
                                   train_time=train_time, wall_time=wall_before + time.perf_counter() - wall0,
                                   losses=losses, curve=curve, batch_generator=train_gen, settings=fingerprint,
                                   vocab_size=test.vocab_size)  # fmt: skip
            log(f"  step {done}: test accuracy {acc:.3f}, loss {test_loss:.3f} ({train_time:.0f} s)")
    diverged = not math.isfinite(losses[-1])
    final = curve[-1] if curve and not diverged else {"test_accuracy": 0.0, "test_loss": float("inf")}
    return {"status": "done", "diverged": diverged, "accuracy": final["test_accuracy"],
            "accuracy_by_answer": final.get("accuracy_by_answer", []),
            "test_loss": final["test_loss"], "chance": test.chance, "parameters": count_parameters(model),
            "train_time_s": train_time, "wall_time_s": wall_before + time.perf_counter() - wall0, "curve": curve,
            "steps_done": len(losses)}  # fmt: skip


def run_task_grid(spec: GridSpec, out_dir: str | Path, resume: bool = True, log: Callable[[str], None] = print,
                  plots: bool = True, train: bool = True) -> list[dict[str, Any]]:  # fmt: skip
    """Run (or, with `resume`, finish) the grid; write results, ``table.md`` and curves; return the results.

    ``train=False`` only reports: the table and curves of the grid's finished runs, missing ones listed."""
    out = Path(out_dir)
    runs_dir = out / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    if spec.threads:
        torch.set_num_threads(spec.threads)
    models = parse_models(spec.models, log=log)
    cells = plan_cells(spec)
    if train:
        atomic_write_json(out / "grid.json", {"spec": dataclasses.asdict(spec), "models": [m.label for m in models],
                                               "versions": versions()})  # fmt: skip
    results: list[dict[str, Any]] = []

    def one(cell: Cell, m: ModelChoice, width: int, lr: float, seed: int, sweep: bool) -> dict[str, Any] | None:
        settings = _settings(spec, cell, m, width, lr, seed)
        path = runs_dir / f"{_run_id(cell, m, width, lr, seed)}.json"
        done = _read_done(path, settings) if resume or not train else None
        if done is not None:
            log(f"skip (done): {path.name}")
        elif not train:
            log(f"missing: {path.name}")
            return None
        else:
            log(f"run: {path.name}")
            ckpt = partial_dir(path)
            if not resume:
                discard_progress(ckpt)
            r = train_one(spec, cell, m, width, lr, seed, log=log, checkpoint=ckpt, settings=settings)
            done = {"settings": settings, **r, "versions": versions()}
            atomic_write_json(path, done)
            discard_progress(ckpt)
            log(f"  -> accuracy {done['accuracy']:.3f} (chance {done['chance']:.3f}), {done['wall_time_s']:.0f} s wall")
        done = {**done, "sweep": sweep}
        results.append(done)
        return done

    for task, task_cells in cells.items():
        for m in models:
            for width in spec.widths:
                lr = spec.lrs[0]
                if len(spec.lrs) > 1:  # sweep on the smallest cell, first seed; reuse the best
                    swept = [one(task_cells[0], m, width, x, spec.seeds[0], True) for x in spec.lrs]
                    swept = [r for r in swept if r is not None]
                    if swept:
                        best = max(swept, key=lambda r: (r["accuracy"], -r["test_loss"]))
                        lr = best["settings"]["lr"]
                        log(f"best lr for {task} {m.label} width {width}: {lr:g}")
                for i, cell in enumerate(task_cells):
                    for seed in spec.seeds:
                        if len(spec.lrs) > 1 and i == 0 and seed == spec.seeds[0]:
                            continue  # the sweep ran it
                        one(cell, m, width, lr, seed, False)
    table = write_table(results, out / "table.md", spec)
    log(table)
    if plots:
        write_curves(results, out / "curves")
    return results


def _chosen(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The runs at each (task, model, width)'s chosen learning rate: the sweep's best and the reused runs."""
    reused = {(r["settings"]["task"], r["settings"]["model"], r["settings"]["width"]): r["settings"]["lr"]
              for r in results if not r.get("sweep")}  # fmt: skip
    best: dict[tuple, dict[str, Any]] = {}
    for r in results:
        if r.get("sweep"):
            key = (r["settings"]["task"], r["settings"]["model"], r["settings"]["width"])
            if key not in best or (r["accuracy"], -r["test_loss"]) > (best[key]["accuracy"], -best[key]["test_loss"]):
                best[key] = r
    chosen = [r for r in results if not r.get("sweep")]
    for key, r in best.items():
        if reused.get(key, r["settings"]["lr"]) == r["settings"]["lr"]:
            chosen.append(r)
    return chosen


def write_table(results: list[dict[str, Any]], path: str | Path, spec: GridSpec | None = None) -> str:
    """``table.md``: accuracy per (task, cell, model, width, steps, lr), mean ± std over seeds, at the chosen lr."""
    rows: dict[tuple, list[dict[str, Any]]] = {}
    for r in _chosen(results):
        s = r["settings"]
        rows.setdefault((s["task"], s["cell"], s["model"], s["width"], s["steps"], s["lr"]), []).append(r)
    order = {t: i for i, t in enumerate(TASKS)}

    def cell_key(name: str) -> tuple[int, ...]:
        return tuple(int(x) for x in re.findall(r"\d+", name))

    lines = ["| task | cell | model | width | params | lr | seeds | accuracy | chance | steps x batch | wall s/run |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for key in sorted(rows, key=lambda k: (order.get(k[0], 9), cell_key(k[1]), k[3], k[2], k[4], k[5])):
        rs = rows[key]
        s = rs[0]["settings"]
        accs = [r["accuracy"] for r in rs]
        acc = f"{statistics.fmean(accs):.3f}" + (f" ± {statistics.stdev(accs):.3f}" if len(accs) > 1 else "")
        if any(r.get("diverged") for r in rs):
            acc += " (diverged)"
        wall = statistics.fmean(r["wall_time_s"] for r in rs)
        lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | {rs[0]['parameters']:,} | {s['lr']:g} | "
                     f"{len(rs)} | {acc} | {rs[0]['chance']:.3f} | {s['steps']} x {s['batch_size']} | {wall:.0f} |")  # fmt: skip
    sweeps = [r for r in results if r.get("sweep")]
    if sweeps:
        lines += ["", "Learning-rate sweep (smallest cell, first seed): final test accuracy", "",
                  "| task | cell | model | width | lr | accuracy |", "|---|---|---|---:|---:|---:|"]  # fmt: skip
        for r in sorted(sweeps, key=lambda r: (order.get(r["settings"]["task"], 9), r["settings"]["model"],
                                               r["settings"]["width"], r["settings"]["lr"])):  # fmt: skip
            s = r["settings"]
            lines.append(f"| {s['task']} | {s['cell']} | {s['model']} | {s['width']} | {s['lr']:g} | {r['accuracy']:.3f} |")
    text = "\n".join(lines) + "\n"
    atomic_write_bytes(path, text.encode())
    return text


def write_curves(results: list[dict[str, Any]], out_dir: str | Path) -> list[Path]:
    """One PNG per (task, cell, width): test accuracy against step for every model (seeds as line styles)."""
    from astrosnn.viz.lm import plot_task_curves

    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in _chosen(results):
        s = r["settings"]
        groups.setdefault((s["task"], s["cell"], s["width"]), []).append(r)
    paths = []
    for (task, cell, width), rs in sorted(groups.items()):
        title = f"{task} {cell}, width {width}"
        paths.append(plot_task_curves(rs, Path(out_dir) / f"{task}-{cell}-w{width}.png", title=title))
    return paths
