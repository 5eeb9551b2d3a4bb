"""Train a language model: AdamW, warm-up + cosine schedule, clipping, truncated BPTT, validation, resume.

One step = one batch of `batch_size` contiguous streams x `seq_len` tokens (see `batching`). The recurrent
state is carried from batch to batch (and detached), reset when the streams wrap around to the start.
The schedule runs over `steps` optimiser steps, or over a wall-clock `time_budget` of training time
(validation and checkpoint writing are not counted). In step mode a resumed run continues the exact loss
curve of an uninterrupted one.

:func:`train` sets up a :class:`Trainer` (model, optimizer, data, carried state and progress as explicit
attributes) and runs its loop; the trainer's parts are the step (:meth:`Trainer.train_step`), the evaluation
(:meth:`Trainer.validate`) and the checkpoint (:meth:`Trainer.save`, :meth:`Trainer.metrics`).
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from astrosnn.data.text import load_corpus
from astrosnn.errors import AstrosnnError
from astrosnn.lm.base import DEFAULT_SIZE
from astrosnn.lm.batching import StreamBatcher
from astrosnn.lm.checkpoint import (
    CONFIG,
    TRAIN_JSON,
    load_checkpoint,
    load_training_state,
    read_config,
    save_checkpoint,
    save_training_state,
)
from astrosnn.lm.registry import build_model, count_parameters, model_kinds, width_for_parameters
from astrosnn.lm.state import detach_state
from astrosnn.runinfo import atomic_write_json, seed_everything, versions

DEFAULT_TIME_BUDGET = 60.0


@dataclass
class TrainConfig:
    """Everything a training run depends on; checked on creation (:meth:`validate`, pure).

    Model size: ``width`` None is :data:`astrosnn.lm.base.DEFAULT_SIZE` ``.width``, or the width that gives
    about ``params`` parameters; ``layers`` and ``heads`` default to the same home.
    """

    corpus: str = "default"
    model: str = "astrosnn"
    width: int | None = None  # None: DEFAULT_SIZE.width, or the width that gives about `params` parameters
    layers: int = DEFAULT_SIZE.layers
    heads: int = DEFAULT_SIZE.heads  # astrocyte or attention heads; the LSTM ignores it
    seq_len: int = 64
    batch_size: int = 16
    steps: int | None = None  # exactly one of steps / time_budget; neither: time_budget = DEFAULT_TIME_BUDGET
    time_budget: float | None = None  # seconds of training time
    lr: float = 5e-3
    warmup_steps: int = 50
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    seed: int = 0
    eval_every: int | None = None  # steps; None: 10 validations per run
    eval_tokens: int | None = 8192  # periodic validations use the first N tokens (None: all); the final one uses all
    out: str = "runs/lm"
    data_dir: str | None = None
    params: int | None = None  # target parameter count; picks the width
    threads: int | None = None  # None: torch's default (one per core); 1 on a CPU that other jobs share
    model_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise an AstrosnnError naming the first bad field; changes nothing."""
        if self.model not in model_kinds():
            raise AstrosnnError(f"unknown model {self.model!r} (choose from {', '.join(model_kinds())})")
        if self.steps is not None and self.time_budget is not None:
            raise AstrosnnError("give steps or time_budget, not both")
        if self.steps is not None and self.steps < 1:
            raise AstrosnnError(f"steps must be >= 1, got {self.steps}")
        if self.time_budget is not None and not self.time_budget > 0:
            raise AstrosnnError(f"time_budget must be > 0 seconds, got {self.time_budget}")
        for name in ("seq_len", "batch_size", "layers", "heads"):
            if getattr(self, name) < 1:
                raise AstrosnnError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise AstrosnnError(f"lr must be > 0, got {self.lr}")
        if self.eval_tokens is not None and self.eval_tokens < 2:
            raise AstrosnnError(f"eval_tokens must be >= 2, got {self.eval_tokens}")
        if self.eval_every is not None and self.eval_every < 1:
            raise AstrosnnError(f"eval_every must be >= 1, got {self.eval_every}")
        if self.params is not None and self.width is not None:
            raise AstrosnnError("give width or params, not both")
        if self.threads is not None and self.threads < 1:
            raise AstrosnnError(f"threads must be >= 1, got {self.threads}")

    def normalised(self) -> TrainConfig:
        """A checked copy with the run length settled (neither steps nor time_budget: DEFAULT_TIME_BUDGET)."""
        self.validate()
        if self.steps is None and self.time_budget is None:
            return dataclasses.replace(self, time_budget=DEFAULT_TIME_BUDGET)
        return dataclasses.replace(self)

    def model_build_options(self) -> dict[str, Any]:
        """The options `build_model` gets (before a `params` target picks the width)."""
        width = self.width if self.width is not None or self.params is not None else DEFAULT_SIZE.width
        return {"width": width, "layers": self.layers, "heads": self.heads, "seq_len": self.seq_len,
                **self.model_options}  # fmt: skip


def learning_rate(cfg: TrainConfig, step: int, elapsed: float) -> float:
    """Linear warm-up over `warmup_steps`, then cosine decay to `min_lr_ratio * lr` over steps or time."""
    if cfg.steps is not None:
        warmup = min(cfg.warmup_steps, max(cfg.steps // 10, 1))
        if step < warmup:
            return cfg.lr * (step + 1) / warmup
        frac = (step - warmup) / max(cfg.steps - warmup, 1)
    else:
        warmup = cfg.warmup_steps
        if step < warmup:
            return cfg.lr * (step + 1) / warmup
        frac = elapsed / cfg.time_budget
    frac = min(max(frac, 0.0), 1.0)
    ratio = cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * frac))
    return cfg.lr * ratio


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW; weight decay on matrices only (not on biases, gains, embeddings' neighbours of rank 1)."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.99), foreach=False)


@torch.no_grad()
def evaluate(model: nn.Module, ids, batch_size: int, seq_len: int) -> float:
    """Mean cross-entropy (nats per token) over all of `ids`, state carried for recurrent models."""
    was_training = model.training
    model.eval()
    n = len(ids)
    batch_size = max(1, min(batch_size, n // (seq_len + 1)))
    batcher = StreamBatcher(ids, batch_size, seq_len, drop_last=False)
    total, count, state = 0.0, 0, None
    for x, y in batcher:
        logits, state = model(x, state if model.carries_state else None)
        total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1), reduction="sum"))
        count += y.numel()
    model.train(was_training)
    return total / count


def score(loss: float, level: str) -> tuple[str, float]:
    """(name, value) of the validation figure: bits per character, or perplexity for word corpora."""
    if level == "char":
        return "bits_per_char", loss / math.log(2)
    return "perplexity", math.exp(min(loss, 700.0))


def _corpus_info(corpus, train_n: int, valid_n: int) -> dict[str, Any]:  # noqa: ANN001
    return {
        "name": corpus.name,
        "level": corpus.level,
        "source": corpus.source,
        "vocab_size": len(corpus.vocab),
        "train_tokens": train_n,
        "valid_tokens": valid_n,
    }


def _fresh_progress() -> dict[str, Any]:
    return {"step": 0, "elapsed_train": 0.0, "wall_before": 0.0, "tokens": 0, "train_loss": [], "validation": []}


class Trainer:
    """One training run. State: ``model``, ``optimizer``, the carried recurrent ``state`` and ``progress`` (a
    JSON-friendly dict stored with every checkpoint: step, tokens, training time, losses, validations)."""

    def __init__(self, cfg: TrainConfig, out: Path, resume: bool, corpus=None) -> None:  # noqa: ANN001
        self.wall_start = time.perf_counter()
        seed_everything(cfg.seed)  # before anything draws random numbers: the model's initialisation
        self.cfg, self.out = cfg, out
        if corpus is None:
            corpus = load_corpus(cfg.corpus, data_dir=cfg.data_dir)
        self.corpus = corpus
        train_ids = torch.from_numpy(corpus.encode(corpus.train))
        self.valid_ids = torch.from_numpy(corpus.encode(corpus.valid))
        if len(self.valid_ids) < 2:
            raise AstrosnnError(f"corpus {corpus.name!r} has no validation text")
        self.batcher = StreamBatcher(train_ids, cfg.batch_size, cfg.seq_len)
        self.vocab = tuple(corpus.vocab)
        self.train_tokens = len(train_ids)
        if resume:
            self._resume()
        else:
            self._start()
        self.params = count_parameters(self.model)
        self.level = corpus.level
        self.carries = self.model.carries_state
        self.metric_name = score(0.0, self.level)[0]
        self.eval_every = cfg.eval_every or (max(1, cfg.steps // 10) if cfg.steps else None)
        self.eval_seconds = None if self.eval_every else cfg.time_budget / 10
        self.last_eval_time = self.progress["elapsed_train"]
        self.smooth: float | None = None  # smoothed training loss, for the progress bar
        self.extra = {
            "train_config": dataclasses.asdict(cfg),
            "corpus": _corpus_info(corpus, len(train_ids), len(self.valid_ids)),
            "versions": versions(),
        }

    def _start(self) -> None:
        cfg = self.cfg
        options = cfg.model_build_options()
        if cfg.params is not None:
            options["width"] = width_for_parameters(cfg.model, len(self.vocab), cfg.params, **options)
        self.model = build_model(cfg.model, len(self.vocab), **options)
        self.optimizer = make_optimizer(self.model, cfg)
        self.state = None
        self.progress = _fresh_progress()

    def _resume(self) -> None:
        saved = read_config(self.out)
        if tuple(saved["vocab"]) != self.vocab:
            raise AstrosnnError(f"{self.out / CONFIG}: the corpus vocabulary differs from the checkpoint's")
        self.model = load_checkpoint(self.out, kind=self.cfg.model).model
        self.model.train()
        self.optimizer = make_optimizer(self.model, self.cfg)
        self.state, self.progress = load_training_state(self.out, self.model, self.optimizer, self.cfg.batch_size)
        self.progress["wall_before"] = self.progress.get("wall_time_s", self.progress["wall_before"])

    # ------------------------------------------------------------------------------------------- loop

    def done(self) -> bool:
        if self.cfg.steps is not None:
            return self.progress["step"] >= self.cfg.steps
        return self.progress["elapsed_train"] >= self.cfg.time_budget

    def train_step(self) -> tuple[float, float]:
        """One optimiser step on the next batch; returns (loss, learning rate)."""
        cfg, prog, model = self.cfg, self.progress, self.model
        index = prog["step"] % len(self.batcher)
        state = None if index == 0 or not self.carries else self.state
        x, y = self.batcher.batch(index)
        lr = learning_rate(cfg, prog["step"], prog["elapsed_train"])
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        logits, new_state = model(x, state)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        self.optimizer.step()
        self.state = detach_state(new_state) if self.carries else None
        value = float(loss.detach())
        if not math.isfinite(value):
            raise AstrosnnError(f"training diverged: loss is {value} at step {prog['step']} (try a lower lr)")
        prog["step"] += 1
        prog["tokens"] += cfg.batch_size * cfg.seq_len
        prog["train_loss"].append(value)
        return value, lr

    def eval_due(self) -> bool:
        prog = self.progress
        due = (self.eval_every and prog["step"] % self.eval_every == 0) or (
            self.eval_seconds and prog["elapsed_train"] - self.last_eval_time >= self.eval_seconds
        )
        return bool(due) and not self.done()

    def _progress_bar(self, progress: bool) -> tqdm:
        cfg, prog = self.cfg, self.progress
        if cfg.steps is not None:
            return tqdm(total=cfg.steps, initial=prog["step"], unit="step", disable=not progress, mininterval=1.0)
        return tqdm(total=round(cfg.time_budget), initial=int(prog["elapsed_train"]), disable=not progress,
                    mininterval=1.0, bar_format="{l_bar}{bar}| {n}/{total} s training [{elapsed}{postfix}]")  # fmt: skip

    def _show(self, bar: tqdm, value: float, lr: float) -> None:
        prog = self.progress
        self.smooth = value if self.smooth is None else 0.95 * self.smooth + 0.05 * value
        if self.cfg.steps is not None:
            bar.update(1)
        else:
            bar.update(max(0, min(int(prog["elapsed_train"]), bar.total) - bar.n))
        bar.set_postfix(loss=f"{self.smooth:.3f}", tok_s=f"{prog['tokens'] / prog['elapsed_train']:.0f}",
                        lr=f"{lr:.1e}", refresh=False)  # fmt: skip

    def run(self, stop_at_step: int | None = None, progress: bool = True, log=print) -> dict[str, Any]:  # noqa: ANN001
        cfg, prog = self.cfg, self.progress
        log(f"training {cfg.model} ({self.params:,} parameters) on {self.corpus.name} ({self.train_tokens:,} "
            f"train tokens, vocab {len(self.vocab)}), batch {cfg.batch_size} x {cfg.seq_len}"
            + (f", {cfg.steps} steps" if cfg.steps else f", time budget {cfg.time_budget:g} s"))  # fmt: skip
        bar = self._progress_bar(progress)
        self.model.train()
        try:
            while not self.done():
                if stop_at_step is not None and prog["step"] >= stop_at_step:
                    self.save(False)
                    bar.close()
                    return self.metrics(False)
                t0 = time.perf_counter()
                value, lr = self.train_step()
                prog["elapsed_train"] += time.perf_counter() - t0
                self._show(bar, value, lr)
                if self.eval_due():
                    entry = self.validate()
                    self.last_eval_time = prog["elapsed_train"]
                    bar.write(f"step {entry['step']}: validation {self.metric_name} {entry[self.metric_name]:.4f}")
                    self.save(False)
        except KeyboardInterrupt:
            bar.close()
            self.save(False)
            log(f"interrupted at step {prog['step']}; resume with --resume --out {self.out}")
            raise
        bar.close()
        last = prog["validation"][-1] if prog["validation"] else None
        if last is None or last["step"] != prog["step"] or last["valid_tokens"] != len(self.valid_ids):
            self.validate(final=True)
        final = prog["validation"][-1]
        self.save(True)
        log(f"done: {prog['step']} steps, {prog['tokens'] / max(prog['elapsed_train'], 1e-9):,.0f} tokens/s, "
            f"validation {self.metric_name} {final[self.metric_name]:.4f}; checkpoint in {self.out}")
        return self.metrics(True)

    # ------------------------------------------------------------------------------------- evaluation

    def validate(self, final: bool = False) -> dict[str, Any]:
        """Validate now (a prefix of `eval_tokens` unless `final`); the entry joins progress["validation"]."""
        cfg, prog = self.cfg, self.progress
        ids = self.valid_ids if final or not cfg.eval_tokens else self.valid_ids[: cfg.eval_tokens]
        loss = evaluate(self.model, ids, cfg.batch_size, cfg.seq_len)
        entry = {"step": prog["step"], "tokens": prog["tokens"], "train_time_s": prog["elapsed_train"], "loss": loss,
                 "valid_tokens": len(ids)}  # fmt: skip
        entry[self.metric_name] = score(loss, self.level)[1]
        prog["validation"].append(entry)
        return entry

    # ------------------------------------------------------------------------------------- checkpoint

    def metrics(self, finished: bool) -> dict[str, Any]:
        """The content of metrics.json."""
        prog, cfg = self.progress, self.cfg
        vals = prog["validation"]
        best = min(vals, key=lambda v: v["loss"]) if vals else None
        wall = prog["wall_before"] + time.perf_counter() - self.wall_start
        return {
            "model": cfg.model,
            "parameters": self.params,
            "metric": self.metric_name,
            "final_validation": vals[-1] if vals and finished else None,
            "best_validation": best,
            "tokens_per_second": prog["tokens"] / prog["elapsed_train"] if prog["elapsed_train"] else None,
            "steps": prog["step"],
            "tokens": prog["tokens"],
            "train_time_s": prog["elapsed_train"],
            "wall_time_s": wall,
            "finished": finished,
            "seed": cfg.seed,
            "config": dataclasses.asdict(cfg),
            "model_config": dataclasses.asdict(self.model.config),
            "corpus": self.extra["corpus"],
            "versions": self.extra["versions"],
            "train_loss": prog["train_loss"],
            "validation": vals,
        }

    def save(self, finished: bool) -> None:
        """Training state, then weights and config, then metrics.json (each file atomic)."""
        prog = self.progress
        prog["wall_time_s"] = prog["wall_before"] + time.perf_counter() - self.wall_start
        save_training_state(self.out, self.optimizer, self.state if self.carries else None, prog)
        save_checkpoint(self.out, self.model, vocab=self.vocab, level=self.level, step=prog["step"], extra=self.extra)
        atomic_write_json(self.out / "metrics.json", self.metrics(finished))


def train(
    cfg: TrainConfig,
    *,
    resume: bool = False,
    corpus=None,  # noqa: ANN001
    stop_at_step: int | None = None,
    progress: bool = True,
    log=print,  # noqa: ANN001
) -> dict[str, Any]:
    """Run (or resume) training; write checkpoints and metrics.json into `cfg.out`; return the metrics.

    `corpus` (a TextCorpus) skips loading by name; `stop_at_step` ends the run early with a resumable
    checkpoint (as an interruption would).
    """
    out = Path(cfg.out)
    if resume:
        cfg = _resumed_config(out, cfg)
    cfg = cfg.normalised()
    threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        return Trainer(cfg, out, resume, corpus).run(stop_at_step, progress, log)
    finally:
        torch.set_num_threads(threads)


def _resumed_config(out: Path, given: TrainConfig) -> TrainConfig:
    """The saved training config; only steps / time budget / eval interval / threads may be changed."""
    if not (out / TRAIN_JSON).is_file():
        if not out.exists():
            raise AstrosnnError(f"cannot resume: {out} does not exist")
        raise AstrosnnError(f"cannot resume: {out} holds no training state ({TRAIN_JSON} missing)")
    saved = read_config(out).get("train_config")
    if not isinstance(saved, dict):
        raise AstrosnnError(f"{out / CONFIG}: no training config to resume from")
    try:
        cfg = TrainConfig(**saved)
    except TypeError as e:
        raise AstrosnnError(f"{out / CONFIG}: training config does not fit this version ({e})") from None
    if given.steps is not None or given.time_budget is not None:
        cfg.steps, cfg.time_budget = given.steps, given.time_budget
    cfg.eval_every = given.eval_every or cfg.eval_every
    cfg.threads = given.threads or cfg.threads
    cfg.data_dir = given.data_dir or cfg.data_dir
    cfg.eval_tokens = given.eval_tokens or cfg.eval_tokens
    cfg.out = str(out)
    return cfg
