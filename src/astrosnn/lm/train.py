"""Train a language model: AdamW, warm-up + cosine schedule, clipping, truncated BPTT, validation, resume.

One step = one batch of `batch_size` contiguous streams x `seq_len` tokens (see `batching`). The recurrent
state is carried from batch to batch (and detached), reset when the streams wrap around to the start.
The schedule runs over `steps` optimiser steps, or over a wall-clock `time_budget` of training time
(validation and checkpoint writing are not counted). In step mode a resumed run continues the exact loss
curve of an uninterrupted one.
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

from astrosnn.errors import AstrosnnError
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
from astrosnn.lm.factory import MODEL_KINDS, build_model, count_parameters, width_for_parameters
from astrosnn.lm.state import detach_state
from astrosnn.runinfo import atomic_write_json, seed_everything, versions

DEFAULT_TIME_BUDGET = 60.0
DEFAULT_WIDTH = 96


@dataclass
class TrainConfig:
    corpus: str = "default"
    model: str = "astrosnn"
    # The defaults make a small model that visibly learns in a one-minute run on a laptop CPU.
    width: int | None = None  # None: DEFAULT_WIDTH, or the width that gives about `params` parameters
    layers: int = 2
    heads: int = 4  # astrocyte heads (AstroSNN) or attention heads (Transformer); the LSTM ignores it
    seq_len: int = 64
    batch_size: int = 16
    steps: int | None = None  # exactly one of steps / time_budget; neither: time_budget = 60 s
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

    def validate(self) -> None:
        if self.model not in MODEL_KINDS:
            raise AstrosnnError(f"unknown model {self.model!r} (choose from {', '.join(MODEL_KINDS)})")
        if self.steps is not None and self.time_budget is not None:
            raise AstrosnnError("give --steps or --time-budget, not both")
        if self.steps is None and self.time_budget is None:
            self.time_budget = DEFAULT_TIME_BUDGET
        if self.steps is not None and self.steps < 1:
            raise AstrosnnError(f"--steps must be >= 1, got {self.steps}")
        if self.time_budget is not None and not self.time_budget > 0:
            raise AstrosnnError(f"--time-budget must be > 0 seconds, got {self.time_budget}")
        for name in ("seq_len", "batch_size", "layers", "heads"):
            if getattr(self, name) < 1:
                raise AstrosnnError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise AstrosnnError(f"--lr must be > 0, got {self.lr}")
        if self.eval_tokens is not None and self.eval_tokens < 2:
            raise AstrosnnError(f"--eval-tokens must be >= 2, got {self.eval_tokens}")
        if self.eval_every is not None and self.eval_every < 1:
            raise AstrosnnError(f"--eval-every must be >= 1, got {self.eval_every}")
        if self.params is not None and self.width is not None:
            raise AstrosnnError("give --width or --params, not both")
        if self.threads is not None and self.threads < 1:
            raise AstrosnnError(f"--threads must be >= 1, got {self.threads}")


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
    carries = getattr(model, "carries_state", True)
    total, count, state = 0.0, 0, None
    for x, y in batcher:
        logits, state = model(x, state if carries else None)
        total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1), reduction="sum"))
        count += y.numel()
    model.train(was_training)
    return total / count


def score(loss: float, level: str) -> tuple[str, float]:
    """(name, value) of the validation figure: bits per character, or perplexity for word corpora."""
    if level == "char":
        return "bits_per_char", loss / math.log(2)
    return "perplexity", math.exp(min(loss, 700.0))


def _model_options(cfg: TrainConfig) -> dict[str, Any]:
    width = cfg.width if cfg.width is not None or cfg.params is not None else DEFAULT_WIDTH
    return {"width": width, "layers": cfg.layers, "heads": cfg.heads, "seq_len": cfg.seq_len, **cfg.model_options}


def _corpus_info(corpus, train_n: int, valid_n: int) -> dict[str, Any]:
    return {
        "name": corpus.name,
        "level": corpus.level,
        "source": corpus.source,
        "vocab_size": len(corpus.vocab),
        "train_tokens": train_n,
        "valid_tokens": valid_n,
    }


def train(
    cfg: TrainConfig,
    *,
    resume: bool = False,
    corpus=None,
    stop_at_step: int | None = None,
    progress: bool = True,
    log=print,
) -> dict[str, Any]:
    """Run (or resume) training; write checkpoints and metrics.json into `cfg.out`; return the metrics.

    `corpus` (a TextCorpus) skips loading by name; `stop_at_step` ends the run early with a resumable
    checkpoint (as an interruption would).
    """
    out = Path(cfg.out)
    if resume:
        cfg = _resumed_config(out, cfg)
    cfg.validate()
    threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        return _train(cfg, out, resume, corpus, stop_at_step, progress, log)
    finally:
        torch.set_num_threads(threads)


def _train(cfg: TrainConfig, out: Path, resume: bool, corpus, stop_at_step, progress: bool, log) -> dict[str, Any]:
    wall_start = time.perf_counter()
    seed_everything(cfg.seed)

    if corpus is None:
        from astrosnn.data.text import load_corpus

        corpus = load_corpus(cfg.corpus, data_dir=cfg.data_dir)
    train_ids = torch.from_numpy(corpus.encode(corpus.train))
    valid_ids = torch.from_numpy(corpus.encode(corpus.valid))
    if len(valid_ids) < 2:
        raise AstrosnnError(f"corpus {corpus.name!r} has no validation text")
    batcher = StreamBatcher(train_ids, cfg.batch_size, cfg.seq_len)
    vocab = tuple(corpus.vocab)

    if resume:
        saved = read_config(out)
        if tuple(saved["vocab"]) != vocab:
            raise AstrosnnError(f"{out / CONFIG}: the corpus vocabulary differs from the checkpoint's")
        model = load_checkpoint(out, kind=cfg.model).model
        model.train()
        optimizer = make_optimizer(model, cfg)
        state, prog = load_training_state(out, model, optimizer, cfg.batch_size)
        prog["wall_before"] = prog.get("wall_time_s", prog["wall_before"])
    else:
        options = _model_options(cfg)
        if cfg.params is not None:
            options["width"] = width_for_parameters(cfg.model, len(vocab), cfg.params, **options)
        model = build_model(cfg.model, len(vocab), **options)
        optimizer = make_optimizer(model, cfg)
        state = None
        prog = {"step": 0, "elapsed_train": 0.0, "wall_before": 0.0, "tokens": 0, "train_loss": [], "validation": []}

    params = count_parameters(model)
    level = corpus.level
    carries = getattr(model, "carries_state", True)
    tokens_per_step = cfg.batch_size * cfg.seq_len
    eval_every = cfg.eval_every or (max(1, cfg.steps // 10) if cfg.steps else None)
    eval_seconds = None if eval_every else cfg.time_budget / 10
    extra = {
        "train_config": dataclasses.asdict(cfg),
        "corpus": _corpus_info(corpus, len(train_ids), len(valid_ids)),
        "versions": versions(),
    }
    metric_name = score(0.0, level)[0]

    def metrics(finished: bool) -> dict[str, Any]:
        vals = prog["validation"]
        best = min(vals, key=lambda v: v["loss"]) if vals else None
        wall = prog["wall_before"] + time.perf_counter() - wall_start
        return {
            "model": cfg.model,
            "parameters": params,
            "metric": metric_name,
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
            "model_config": dataclasses.asdict(model.config),
            "corpus": extra["corpus"],
            "versions": extra["versions"],
            "train_loss": prog["train_loss"],
            "validation": vals,
        }

    def validate_now(final: bool = False) -> dict[str, Any]:
        ids = valid_ids if final or not cfg.eval_tokens else valid_ids[: cfg.eval_tokens]
        loss = evaluate(model, ids, cfg.batch_size, cfg.seq_len)
        entry = {"step": prog["step"], "tokens": prog["tokens"], "train_time_s": prog["elapsed_train"], "loss": loss,
                 "valid_tokens": len(ids)}
        entry[metric_name] = score(loss, level)[1]
        prog["validation"].append(entry)
        return entry

    def save(finished: bool) -> None:
        prog["wall_time_s"] = prog["wall_before"] + time.perf_counter() - wall_start
        save_training_state(out, optimizer, state if carries else None, prog)
        save_checkpoint(out, model, vocab=vocab, level=level, step=prog["step"], extra=extra)
        atomic_write_json(out / "metrics.json", metrics(finished))

    def done() -> bool:
        if cfg.steps is not None:
            return prog["step"] >= cfg.steps
        return prog["elapsed_train"] >= cfg.time_budget

    log(f"training {cfg.model} ({params:,} parameters) on {corpus.name} ({len(train_ids):,} train tokens, "
        f"vocab {len(vocab)}), batch {cfg.batch_size} x {cfg.seq_len}"
        + (f", {cfg.steps} steps" if cfg.steps else f", time budget {cfg.time_budget:g} s"))
    from tqdm.auto import tqdm

    if cfg.steps is not None:
        bar = tqdm(total=cfg.steps, initial=prog["step"], unit="step", disable=not progress, mininterval=1.0)
    else:
        bar = tqdm(total=round(cfg.time_budget), initial=int(prog["elapsed_train"]), disable=not progress,
                   mininterval=1.0, bar_format="{l_bar}{bar}| {n}/{total} s training [{elapsed}{postfix}]")
    last_eval_time = prog["elapsed_train"]
    smooth = None
    model.train()
    try:
        while not done():
            if stop_at_step is not None and prog["step"] >= stop_at_step:
                save(False)
                bar.close()
                return metrics(False)
            t0 = time.perf_counter()
            index = prog["step"] % len(batcher)
            if index == 0 or not carries:
                state = None
            x, y = batcher.batch(index)
            lr = learning_rate(cfg, prog["step"], prog["elapsed_train"])
            for group in optimizer.param_groups:
                group["lr"] = lr
            logits, new_state = model(x, state)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            state = detach_state(new_state) if carries else None
            value = float(loss.detach())
            if not math.isfinite(value):
                raise AstrosnnError(f"training diverged: loss is {value} at step {prog['step']} (try a lower --lr)")
            prog["step"] += 1
            prog["tokens"] += tokens_per_step
            prog["train_loss"].append(value)
            dt = time.perf_counter() - t0
            prog["elapsed_train"] += dt
            smooth = value if smooth is None else 0.95 * smooth + 0.05 * value
            if cfg.steps is not None:
                bar.update(1)
            else:
                bar.update(max(0, min(int(prog["elapsed_train"]), bar.total) - bar.n))
            bar.set_postfix(loss=f"{smooth:.3f}", tok_s=f"{prog['tokens'] / prog['elapsed_train']:.0f}", lr=f"{lr:.1e}", refresh=False)
            due = (eval_every and prog["step"] % eval_every == 0) or (
                eval_seconds and prog["elapsed_train"] - last_eval_time >= eval_seconds
            )
            if due and not done():
                entry = validate_now()
                last_eval_time = prog["elapsed_train"]
                bar.write(f"step {entry['step']}: validation {metric_name} {entry[metric_name]:.4f}")
                save(False)
    except KeyboardInterrupt:
        bar.close()
        save(False)
        log(f"interrupted at step {prog['step']}; resume with --resume --out {out}")
        raise
    bar.close()
    last = prog["validation"][-1] if prog["validation"] else None
    if last is None or last["step"] != prog["step"] or last["valid_tokens"] != len(valid_ids):
        validate_now(final=True)
    final = prog["validation"][-1]
    save(True)
    log(f"done: {prog['step']} steps, {prog['tokens'] / max(prog['elapsed_train'], 1e-9):,.0f} tokens/s, "
        f"validation {metric_name} {final[metric_name]:.4f}; checkpoint in {out}")
    return metrics(True)


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
