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
import hashlib
import json
import math
import os
import shutil
import time
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from astrosnn.data.text import load_corpus
from astrosnn.data.token_sampler import TokenStream
from astrosnn.errors import AstrosnnError
from astrosnn.lm import distributed as dist_
from astrosnn.lm.base import DEFAULT_SIZE
from astrosnn.lm.batching import StreamBatcher
from astrosnn.lm.checkpoint import (
    CHECKPOINT_DIR,
    CONFIG,
    DCP_DIR,
    MANIFEST,
    TOKENIZER_FILE,
    TRAIN_JSON,
    WEIGHTS,
    begin_step_folder,
    commit_step_folder,
    export_model,
    load_checkpoint,
    load_training_state,
    read_config,
    read_manifest,
    read_training_json,
    save_checkpoint,
    save_training_checkpoint,
    save_training_state,
)
from astrosnn.lm.registry import build_model, count_parameters, model_kinds, width_for_parameters
from astrosnn.lm.state import detach_state, map_state
from astrosnn.rundir import run_dir
from astrosnn.runinfo import atomic_write_json, refuse_changed_options, seed_everything, versions

DEFAULT_TIME_BUDGET = 60.0
MAX_PARAMETERS = 2_000_000_000  # refused above this, before anything is allocated
# Upper bounds of the numeric options: far above any sensible run, low enough that nothing overflows
LIMITS = {"width": 1 << 16, "layers": 1024, "heads": 4096, "seq_len": 1 << 20, "batch_size": 1 << 16,
          "steps": 10**9, "eval_every": 10**9, "eval_tokens": 1 << 40, "params": MAX_PARAMETERS,
          "time_budget": 10**7, "seed": 2**63 - 1}  # fmt: skip
RESUMABLE = ("steps", "time_budget", "eval_every", "eval_tokens", "threads", "data_dir", "out", "parallel", "precision",
             "activation_checkpointing")  # fmt: skip
# options added for many processes: left out of the fingerprint at their defaults (older runs still resume)
_SCALE_DEFAULTS = {"global_batch": None, "parallel": None, "precision": None, "activation_checkpointing": False,
                   "preset": None}  # fmt: skip


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
    # many processes (torchrun): the global batch in rows (None: processes x batch_size; batch_size is then the
    # per-process micro-batch, accumulated to it), DDP or FSDP2, autocast, activation checkpointing per block
    global_batch: int | None = None
    parallel: str | None = None  # "ddp" | "fsdp"; None: ddp when there are several processes
    precision: str | None = None  # "fp32" | "bf16" (CUDA only); None: bf16 on CUDA, fp32 on CPU
    activation_checkpointing: bool = False
    preset: str | None = None  # the size preset the width, layers, heads and seq_len came from (astrosnn.lm.presets)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise an AstrosnnError naming the first bad field; changes nothing."""
        for name in ("width", "layers", "heads", "seq_len", "batch_size", "steps", "eval_every", "eval_tokens",
                     "params", "seed", "warmup_steps", "threads"):  # fmt: skip
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise AstrosnnError(f"{name} must be an integer, got {value!r}")
        for name in ("lr", "time_budget", "min_lr_ratio", "weight_decay", "grad_clip"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not math.isfinite(value)):  # fmt: skip
                raise AstrosnnError(f"{name} must be a finite number, got {value!r}")
        for name, limit in LIMITS.items():
            value = getattr(self, name)
            if value is not None and value > limit:
                raise AstrosnnError(f"{name} must be <= {limit:,}, got {value:,}")
        if self.seed < 0:
            raise AstrosnnError(f"seed must be >= 0, got {self.seed}")
        if not isinstance(self.model_options, dict):
            raise AstrosnnError("model_options must be a dict")
        if "vocab_size" in self.model_options:
            raise AstrosnnError("vocab_size is not an option: the corpus's vocabulary sets it")
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
        if self.threads is not None and not 1 <= self.threads <= max_threads():
            raise AstrosnnError(f"threads must be in [1, {max_threads()}], got {self.threads}")
        if self.global_batch is not None and (isinstance(self.global_batch, bool) or not isinstance(self.global_batch, int)
                                              or not 1 <= self.global_batch <= LIMITS["batch_size"] * 64):
            raise AstrosnnError(f"global_batch must be an integer in [1, {LIMITS['batch_size'] * 64:,}], got {self.global_batch!r}")
        if self.parallel is not None and self.parallel not in dist_.PARALLEL:
            raise AstrosnnError(f"unknown parallel mode {self.parallel!r} (choose from {', '.join(dist_.PARALLEL)})")
        if self.precision is not None and self.precision not in dist_.PRECISIONS:
            raise AstrosnnError(f"unknown precision {self.precision!r} (choose from {', '.join(dist_.PRECISIONS)})")
        if not isinstance(self.activation_checkpointing, bool):
            raise AstrosnnError("activation_checkpointing must be true or false")
        if self.preset is not None:
            from astrosnn.lm.presets import get_preset

            get_preset(self.preset)
        if not 0 <= self.min_lr_ratio <= 1 or self.weight_decay < 0 or not self.grad_clip > 0 or self.warmup_steps < 0:
            raise AstrosnnError("min_lr_ratio must lie in [0, 1], weight_decay and warmup_steps be >= 0, grad_clip > 0")

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


def config_dict(cfg: TrainConfig) -> dict[str, Any]:
    """The config as stored in checkpoints and metrics.json; the many-process options only where set, so a
    one-process run writes the files it wrote before they existed."""
    d = dataclasses.asdict(cfg)
    for name, default in _SCALE_DEFAULTS.items():
        if d.get(name, default) == default:
            d.pop(name, None)
    return d


def max_threads() -> int:
    """The most torch threads a run may ask for: four per core (at least 8)."""
    return max(8, 4 * (os.cpu_count() or 1))


def fingerprint(cfg: TrainConfig, corpus_info: dict[str, Any], global_batch: int | None = None) -> dict[str, Any]:
    """What a resumed run must repeat: every training option but the run length, evaluation and threads, and the
    corpus's identity (name, level, sizes and a checksum of its tokens).

    ``batch_size`` stands for the global batch (`global_batch`, rows per optimiser step over all processes): how
    it is split into processes and micro-batches may change on resume."""
    options = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in RESUMABLE}
    for name, default in _SCALE_DEFAULTS.items():
        if options.get(name, default) == default:
            options.pop(name, None)
    options.pop("global_batch", None)
    options["batch_size"] = global_batch or cfg.global_batch or cfg.batch_size
    return json.loads(json.dumps({"train_config": options, "corpus": corpus_info}, default=str))


def estimate_parameters(kind: str, vocab_size: int, **options: Any) -> int:
    """Parameters of the model `build_model` would make, counted on the meta device (no memory, no random draws)."""
    rng = torch.get_rng_state()
    try:
        with torch.device("meta"):
            return count_parameters(build_model(kind, vocab_size, **options))
    finally:
        torch.set_rng_state(rng)


def _available_memory() -> int | None:
    """Bytes of memory available (MemAvailable of /proc/meminfo), or None where unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_model_size(kind: str, vocab_size: int, cfg: TrainConfig, shards: int = 1, **options: Any) -> int:
    """Refuse, before allocating, a model above MAX_PARAMETERS or whose training would not fit in memory
    (`shards`: processes an FSDP run divides the gradients and optimizer state into)."""
    n = estimate_parameters(kind, vocab_size, **options)
    if n > MAX_PARAMETERS:
        raise AstrosnnError(f"the {kind} model would have {n:,} parameters, above the limit of {MAX_PARAMETERS:,}: "
                            "use a smaller --width / --layers / --params")  # fmt: skip
    width = int(options.get("width") or DEFAULT_SIZE.width)
    layers = int(options.get("layers") or DEFAULT_SIZE.layers)
    # weights, gradients and two AdamW moments (float32), plus a rough allowance for the activations kept for BPTT
    need = 4 * n + 12 * n // shards + 4 * cfg.batch_size * cfg.seq_len * (8 * width * layers + 2 * vocab_size)
    avail = _available_memory()
    if avail is not None and need > avail:
        raise AstrosnnError(f"training this {kind} model ({n:,} parameters, batch {cfg.batch_size} x {cfg.seq_len}) "
                            f"needs about {need / 2**30:.1f} GiB, {avail / 2**30:.1f} GiB are available")  # fmt: skip
    return n


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
    """(name, value) of the validation figure: bits per character, bits per byte (BPE), or perplexity (words)."""
    if level == "char":
        return "bits_per_char", loss / math.log(2)
    if level == "bpe":
        return "bits_per_byte", loss / math.log(2)  # per token here; Trainer.validate divides by bytes per token
    return "perplexity", math.exp(min(loss, 700.0))


@torch.no_grad()
def evaluate_stream(model: nn.Module, ids, batch_size: int, seq_len: int, byte_lengths: torch.Tensor | None = None,
                    env: dist_.DistEnv | None = None, device: torch.device | None = None) -> tuple[float, int, int]:  # fmt: skip
    """(summed nats, predicted tokens, their UTF-8 bytes) over all of `ids` (the batches of :func:`evaluate`).

    With several processes each rank takes rows r, r + W, ... and the sums are added up over the ranks."""
    env = env or dist_.DistEnv()
    was_training = model.training
    model.eval()
    n = len(ids)
    batch_size = max(1, min(batch_size, n // (seq_len + 1)))
    world = env.world_size if env.active and batch_size % env.world_size == 0 else 1
    stream = TokenStream(ids, batch_size, seq_len, drop_last=False, rank=env.rank if world > 1 else 0,
                         world_size=world)  # fmt: skip
    total, count, nbytes, state = 0.0, 0, 0, None
    carries = dist_.unwrap(model).carries_state
    for x, y in stream:
        if device is not None and device.type != "cpu":
            x, y = x.to(device), y.to(device)
        logits, state = model(x, state if carries else None)
        total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1), reduction="sum"))
        count += y.numel()
        if byte_lengths is not None:
            nbytes += int(byte_lengths[y.cpu()].sum())
    model.train(was_training)
    if world > 1:
        total, c, b = dist_.all_sum([total, float(count), float(nbytes)], env)
        count, nbytes = round(c), round(b)
    return total, count, nbytes


def _corpus_info(corpus, train_ids, valid_ids) -> dict[str, Any]:  # noqa: ANN001
    h = hashlib.sha256("\x00".join(corpus.vocab).encode())
    h.update(train_ids.numpy().tobytes())
    h.update(valid_ids.numpy().tobytes())
    return {
        "name": corpus.name,
        "level": corpus.level,
        "source": corpus.source,
        "vocab_size": len(corpus.vocab),
        "train_tokens": len(train_ids),
        "valid_tokens": len(valid_ids),
        "sha256": h.hexdigest(),
    }


def is_token_folder(corpus: str) -> bool:
    """Whether --corpus names a prepared token folder (`astrosnn lm prepare`), not a named corpus or a text file."""
    return Path(corpus).expanduser().is_dir()


@dataclass
class CorpusData:
    """What training reads of a corpus: token arrays (in memory, or np.memmap for a token folder), the vocabulary,
    the bytes each token stands for, the identity for the fingerprint, and a BPE tokenizer file to keep."""

    name: str
    level: str  # "char" | "word" | "bpe"
    train: Any
    valid: Any
    vocab: tuple[str, ...]
    byte_lengths: np.ndarray
    info: dict[str, Any]
    tokenizer: bytes | None = None


def corpus_data(cfg: TrainConfig, corpus=None) -> CorpusData:  # noqa: ANN001
    """Load `cfg.corpus`: a prepared token folder (read through np.memmap), or a named corpus / text file."""
    if corpus is None and is_token_folder(cfg.corpus):
        from astrosnn.data.tokens import open_token_corpus

        tc = open_token_corpus(cfg.corpus)
        if "validation" not in tc.splits:
            raise AstrosnnError(f"{tc.folder}: the token folder has no validation split")
        m = tc.manifest
        if tc.kind == "char":
            vocab, level, tok_bytes = tuple(tc.vocab), "char", None
        else:
            pieces = sorted(tc.tokenizer.get_vocab().items(), key=lambda kv: kv[1])
            vocab, level = tuple(p for p, _ in pieces), "bpe"
            tok_bytes = (tc.folder / m.tokenizer_file).read_bytes()
            if len(vocab) != tc.vocab_size or [i for _, i in pieces] != list(range(tc.vocab_size)):
                raise AstrosnnError(f"{tc.folder / m.tokenizer_file}: token ids are not 0..{tc.vocab_size - 1}")
        h = hashlib.sha256(m.tokenizer_sha256.encode())
        for split in ("train", "validation"):
            h.update(m.splits[split].sha256.encode())
        train, valid = tc.split("train"), tc.split("validation")
        info = {"name": tc.folder.name, "level": level, "source": str(tc.folder), "tokenizer": tc.kind,
                "vocab_size": tc.vocab_size, "train_tokens": len(train), "valid_tokens": len(valid),
                "sha256": h.hexdigest()}  # fmt: skip
        return CorpusData(tc.folder.name, level, train, valid, vocab, np.asarray(tc.byte_lengths, np.int64), info,
                          tok_bytes)  # fmt: skip
    if corpus is None:
        corpus = load_corpus(cfg.corpus, data_dir=cfg.data_dir)
    train_ids = torch.from_numpy(corpus.encode(corpus.train))
    valid_ids = torch.from_numpy(corpus.encode(corpus.valid))
    # words are written with one separator (space or newline) each: an estimate of their bytes
    sep = 1 if corpus.level == "word" else 0
    lengths = np.array([len(t.encode("utf-8")) + sep for t in corpus.vocab], dtype=np.int64)
    return CorpusData(corpus.name, corpus.level, train_ids.numpy(), valid_ids.numpy(), tuple(corpus.vocab), lengths,
                      _corpus_info(corpus, train_ids, valid_ids))  # fmt: skip


def _fresh_progress() -> dict[str, Any]:
    return {"step": 0, "elapsed_train": 0.0, "wall_before": 0.0, "tokens": 0, "train_loss": [], "validation": []}


class Trainer:
    """One training run. State: ``model``, ``optimizer``, the carried recurrent ``state`` and ``progress`` (a
    JSON-friendly dict stored with every checkpoint: step, tokens, training time, losses, validations).

    With several processes (``env``, from torchrun) ``net`` is the model under DDP or FSDP2, ``model`` the model
    itself; each rank trains rows rank, rank + W, ... of the global batch, ``accum`` micro-batches per step."""

    def __init__(self, cfg: TrainConfig, out: Path, resume: bool, corpus=None,  # noqa: ANN001
                 env: dist_.DistEnv | None = None) -> None:  # fmt: skip
        self.wall_start = time.perf_counter()
        self.env = env = env or dist_.DistEnv()
        seed_everything(cfg.seed)  # before anything draws random numbers: the model's initialisation
        self.cfg, self.out = cfg, out
        self.device = env.device if env.active or torch.cuda.is_available() else torch.device("cpu")
        self.precision = dist_.check_precision(cfg.precision, self.device)
        self.parallel = (cfg.parallel or "ddp") if env.active else None
        self.global_batch, self.accum = dist_.batch_plan(cfg.global_batch, cfg.batch_size, env.world_size)
        data = corpus_data(cfg, corpus)
        self.corpus, self.data = corpus, data
        self.valid_ids = data.valid
        if len(self.valid_ids) < 2:
            raise AstrosnnError(f"corpus {data.name!r} has no validation text")
        self.batcher = TokenStream(data.train, self.global_batch, cfg.seq_len, rank=env.rank,
                                   world_size=env.world_size)  # fmt: skip
        self.vocab = data.vocab
        self.train_tokens = len(data.train)
        self.byte_lengths = torch.from_numpy(data.byte_lengths)
        corpus_info = data.info
        self.fingerprint = fingerprint(cfg, {k: v for k, v in corpus_info.items() if k != "source"}, self.global_batch)
        if resume:
            self._resume()
        else:
            self._start()
        self.params = count_parameters(self.model)
        self.level = data.level
        self.carries = self.model.carries_state
        self.metric_name = score(0.0, self.level)[0]
        self.eval_every = cfg.eval_every or (max(1, cfg.steps // 10) if cfg.steps else None)
        self.eval_seconds = None if self.eval_every else cfg.time_budget / 10
        self.last_eval_time = self.progress["elapsed_train"]
        self.smooth: float | None = None  # smoothed training loss, for the progress bar
        self.extra = {
            "train_config": config_dict(cfg),
            "corpus": corpus_info,
            "versions": versions(),
        }

    def _build(self, model: nn.Module) -> None:
        """Put `model` on the device, under activation checkpointing and DDP / FSDP2; make the optimizer."""
        self.model = model.to(self.device)
        if self.cfg.activation_checkpointing:
            dist_.activation_checkpointing(self.model)
        self.net = dist_.wrap(self.model, self.parallel, self.env) if self.parallel else self.model
        self.optimizer = make_optimizer(self.net, self.cfg)

    def _start(self) -> None:
        cfg = self.cfg
        options = cfg.model_build_options()
        if cfg.params is not None:
            options["width"] = width_for_parameters(cfg.model, len(self.vocab), cfg.params, **options)
        shards = self.env.world_size if self.parallel == "fsdp" else 1
        check_model_size(cfg.model, len(self.vocab), cfg, shards, **options)
        self._build(build_model(cfg.model, len(self.vocab), **options))
        self.state = None
        self.progress = _fresh_progress()

    def _resume(self) -> None:
        folder, manifest = read_manifest(self.out)
        saved = read_config(folder)
        info = read_training_json(folder)
        if info.get("fingerprint") is None:
            raise AstrosnnError(f"{folder / TRAIN_JSON}: the run's fingerprint is missing")
        old_preset = info["fingerprint"].get("train_config", {}).get("preset")
        if old_preset != self.cfg.preset:
            raise AstrosnnError(f"cannot resume: the checkpoint in {self.out} is of preset {old_preset or '(none)'}, "
                                f"not {self.cfg.preset or '(none)'}")  # fmt: skip
        vocab_note = "the corpus vocabulary differs from the checkpoint's"
        try:
            refuse_changed_options(self.out, info["fingerprint"], self.fingerprint)
        except AstrosnnError as e:
            raise AstrosnnError(f"{e} ({vocab_note})" if tuple(saved["vocab"]) != self.vocab else str(e)) from None
        if tuple(saved["vocab"]) != self.vocab:
            raise AstrosnnError(f"{folder / CONFIG}: {vocab_note}")
        _check_run_length(self.out, self.cfg, info["progress"])
        model = load_checkpoint(folder, kind=self.cfg.model).model
        model.train()
        dcp = manifest.get("layout") == "dcp"
        if dcp or self.parallel != "fsdp":
            self._build(model)
            carried, self.progress = load_training_state(folder, self.model, self.optimizer, self.global_batch)
            if dcp:  # the model and optimizer state of a multi-process run, on any number of processes
                dist_.dcp_load(folder / DCP_DIR, self.net, self.optimizer)
        else:  # a one-process checkpoint under FSDP2: the full optimizer state, sharded
            plain = make_optimizer(model, self.cfg)
            carried, self.progress = load_training_state(folder, model, plain, self.global_batch)
            full = dist_.full_optimizer_state(model, plain)
            self._build(model)
            dist_.set_full_optimizer_state(self.net, self.optimizer, full)
        move = (lambda t: dist_.local_rows(t, self.env).to(self.device))  # noqa: E731
        self.state = map_state(move, carried) if carried is not None else None
        self.progress["wall_before"] = max(self.progress.get("wall_time_s", self.progress["wall_before"]),
                                           self.progress["elapsed_train"])  # fmt: skip

    # ------------------------------------------------------------------------------------------- loop

    def done(self) -> bool:
        if self.cfg.steps is not None:
            return self.progress["step"] >= self.cfg.steps
        return self.progress["elapsed_train"] >= self.cfg.time_budget

    def train_step(self) -> tuple[float, float]:
        """One optimiser step on the next global batch (accumulated over micro-batches and processes); returns
        (loss, learning rate)."""
        cfg, prog, net = self.cfg, self.progress, self.net
        index = prog["step"] % len(self.batcher)
        state = None if index == 0 or not self.carries else self.state
        x, y = self.batcher.batch(index)
        if self.device.type != "cpu":
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        lr = learning_rate(cfg, prog["step"], prog["elapsed_train"])
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        micro, total, states = cfg.batch_size, 0.0, []
        for j in range(self.accum):
            rows = slice(j * micro, (j + 1) * micro)
            xs, ys = (x, y) if self.accum == 1 else (x[rows], y[rows])
            st = state if state is None or self.accum == 1 else map_state(lambda t, r=rows: t[r], state)
            sync = self.parallel != "ddp" or j == self.accum - 1
            with nullcontext() if sync else net.no_sync(), dist_.autocast(self.precision, self.device):
                logits, new_state = net(xs, st)
                loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), ys.reshape(-1))
            if self.accum > 1:
                loss = loss / self.accum
            loss.backward()
            total += float(loss.detach())
            states.append(new_state)
        torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
        self.optimizer.step()
        if self.carries:
            merged = states[0] if self.accum == 1 else _cat_states(states)
            self.state = detach_state(merged)
        else:
            self.state = None
        value = total if not self.env.active else dist_.all_sum([total], self.env)[0] / self.env.world_size
        if not math.isfinite(value):
            raise AstrosnnError(f"training diverged: loss is {value} at step {prog['step']} (try a lower lr)")
        prog["step"] += 1
        prog["tokens"] += self.global_batch * cfg.seq_len
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
        progress = progress and self.env.main
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
        cfg, prog, env = self.cfg, self.progress, self.env
        if not env.main:
            log = lambda *a, **k: None  # noqa: E731 - only rank 0 reports
        where = ""
        if env.active:
            where = (f", {env.world_size} processes ({self.parallel}), global batch {self.global_batch} = "
                     f"{env.world_size} x {self.accum} x {cfg.batch_size}")  # fmt: skip
        elif self.accum > 1:
            where = f", global batch {self.global_batch} = {self.accum} x {cfg.batch_size}"
        log(f"training {cfg.model} ({self.params:,} parameters) on {self.data.name} ({self.train_tokens:,} "
            f"train tokens, vocab {len(self.vocab)}), batch {self.global_batch} x {cfg.seq_len}"
            + (f", {cfg.steps} steps" if cfg.steps else f", time budget {cfg.time_budget:g} s") + where)  # fmt: skip
        bar = self._progress_bar(progress)
        self.net.train()
        try:
            while not self.done():
                if stop_at_step is not None and prog["step"] >= stop_at_step:
                    self.save(False)
                    bar.close()
                    return self.metrics(False)
                t0 = time.perf_counter()
                value, lr = self.train_step()
                prog["elapsed_train"] += time.perf_counter() - t0
                if env.active:  # every rank agrees on the time, hence on the schedule and the end
                    prog["elapsed_train"] = dist_.all_max(prog["elapsed_train"], env)
                self._show(bar, value, lr)
                if self.eval_due():
                    entry = self.validate()
                    self.last_eval_time = prog["elapsed_train"]
                    if env.main:
                        bar.write(f"step {entry['step']}: validation {self.metric_name} {entry[self.metric_name]:.4f}")
                    self.save(False)
        except KeyboardInterrupt:
            bar.close()
            if not env.active:  # a checkpoint of several processes needs all of them
                self.save(False)
            log(f"interrupted at step {prog['step']}; resume with --resume --out {self.out}")
            raise
        bar.close()
        last = prog["validation"][-1] if prog["validation"] else None
        if last is None or last["step"] != prog["step"] or last["valid_tokens"] != len(self.valid_ids):
            self.validate(final=True)
        final = prog["validation"][-1]
        from astrosnn.lm.energy import spike_rates

        # per spiking layer, on validation text: metrics.json "spike_rates"
        prog["spike_rates"] = spike_rates(self.model, self.valid_ids, cfg.batch_size, cfg.seq_len, 16384) or None
        self.save(True)
        log(f"done: {prog['step']} steps, {prog['tokens'] / max(prog['elapsed_train'], 1e-9):,.0f} tokens/s, "
            f"validation {self.metric_name} {final[self.metric_name]:.4f}; checkpoint in {self.out}")
        return self.metrics(True)

    # ------------------------------------------------------------------------------------- evaluation

    def validate(self, final: bool = False) -> dict[str, Any]:
        """Validate now (a prefix of `eval_tokens` unless `final`); the entry joins progress["validation"].

        Every entry has the loss, the corpus's own figure (bits per character, bits per byte for BPE, perplexity
        for words), and bits per byte and perplexity, comparable across tokenizers."""
        cfg, prog = self.cfg, self.progress
        ids = self.valid_ids if final or not cfg.eval_tokens else self.valid_ids[: cfg.eval_tokens]
        model = self.net if self.parallel == "fsdp" else self.model
        total, count, nbytes = evaluate_stream(model, ids, self.global_batch, cfg.seq_len, self.byte_lengths,
                                               self.env, self.device)  # fmt: skip
        loss = total / count
        entry = {"step": prog["step"], "tokens": prog["tokens"], "train_time_s": prog["elapsed_train"], "loss": loss,
                 "valid_tokens": len(ids)}  # fmt: skip
        bpb = loss / math.log(2) * (count / nbytes) if nbytes else None
        entry[self.metric_name] = bpb if self.metric_name == "bits_per_byte" else score(loss, self.level)[1]
        entry["bits_per_byte"] = bpb
        entry["perplexity"] = math.exp(min(loss, 700.0))
        prog["validation"].append(entry)
        return entry

    # ------------------------------------------------------------------------------------- checkpoint

    def metrics(self, finished: bool) -> dict[str, Any]:
        """The content of metrics.json."""
        prog, cfg = self.progress, self.cfg
        vals = prog["validation"]
        best = min(vals, key=lambda v: v["loss"]) if vals else None
        wall = max(prog["wall_before"] + time.perf_counter() - self.wall_start, prog["elapsed_train"])
        metrics = {
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
            "config": config_dict(cfg),
            "model_config": dataclasses.asdict(self.model.config),
            "corpus": self.extra["corpus"],
            "versions": self.extra["versions"],
            "train_loss": prog["train_loss"],
            "validation": vals,
            "spike_rates": prog.get("spike_rates"),
        }
        if self.env.active or self.accum > 1:
            metrics["distributed"] = {"world_size": self.env.world_size, "parallel": self.parallel,
                                      "global_batch": self.global_batch, "accumulation": self.accum,
                                      "micro_batch": cfg.batch_size, "precision": self.precision}  # fmt: skip
        return metrics

    def save(self, finished: bool) -> None:
        """The training checkpoint (one atomic step folder), then the model at OUT, then metrics.json.

        Several processes: a distributed checkpoint (every rank writes its shards), the full model and the
        carried state of every row gathered to rank 0, which writes the rest and switches the manifest."""
        prog, env = self.progress, self.env
        prog["wall_time_s"] = max(prog["wall_before"] + time.perf_counter() - self.wall_start, prog["elapsed_train"])
        if not env.active:
            state = self.state if self.carries else None
            if state is not None and self.device.type != "cpu":
                state = map_state(lambda t: t.cpu(), state)
            folder = save_training_checkpoint(self.out, self.model, self.optimizer, state, prog, vocab=self.vocab,
                                              level=self.level, extra=self.extra, fingerprint=self.fingerprint,
                                              tokenizer=self.data.tokenizer)  # fmt: skip
            export_model(folder, self.out)
            atomic_write_json(self.out / "metrics.json", self.metrics(finished))
            return
        step = int(prog["step"])
        tmp = Path(dist_.broadcast_object(str(begin_step_folder(self.out, step)) if env.main else None, env))
        dist_.dcp_save(tmp / DCP_DIR, self.net, self.optimizer)
        weights = dist_.full_model_state(self.net)
        state = None
        if self.carries and self.state is not None:
            state = map_state(lambda t: dist_.gather_rows(t, env).cpu(), self.state)
        if env.main:
            save_checkpoint(tmp, self.model, vocab=self.vocab, level=self.level, step=step, extra=self.extra,
                            tokenizer=self.data.tokenizer, weights=weights)  # fmt: skip
            groups = self.optimizer.state_dict()["param_groups"]
            shim = type("OptimizerGroups", (), {"state_dict": lambda _self: {"state": {}, "param_groups": groups}})()
            save_training_state(tmp, shim, state, prog, self.fingerprint)
            folder = commit_step_folder(self.out, tmp, step, layout="dcp")
            export_model(folder, self.out)
            atomic_write_json(self.out / "metrics.json", self.metrics(finished))
        dist_.barrier(env)


def _cat_states(states: list[Any]) -> Any:
    """The states of consecutive micro-batches joined along the rows (batch-first leaves)."""
    from astrosnn.lm.state import flatten_state, unflatten_like

    leaves = [flatten_state(s) for s in states]
    joined = [None if parts[0] is None else torch.cat(parts, 0) for parts in zip(*leaves)]
    k = len(states)
    template = map_state(lambda t: t.new_empty((t.shape[0] * k, *t.shape[1:])), states[0])
    return unflatten_like(template, joined)


def train(
    cfg: TrainConfig,
    *,
    resume: bool = False,
    corpus=None,  # noqa: ANN001
    stop_at_step: int | None = None,
    progress: bool = True,
    log=print,  # noqa: ANN001
    env: dist_.DistEnv | None = None,
) -> dict[str, Any]:
    """Run (or resume) training; write checkpoints and metrics.json into `cfg.out`; return the metrics.

    `corpus` (a TextCorpus) skips loading by name; `stop_at_step` ends the run early with a resumable
    checkpoint (as an interruption would). Under torchrun (`env`, default: read from the environment) every
    process calls this; rank 0 locks the folder and writes the files.
    """
    cfg.validate()
    env = env or dist_.detect()
    # a global batch that the processes cannot share is refused before any work
    dist_.batch_plan(cfg.global_batch, cfg.batch_size, env.world_size)
    out = Path(cfg.out)
    threads = torch.get_num_threads()
    started = env.active and not _pg_initialized()
    if env.active:
        dist_.init(env)
    try:
        with ExitStack() as stack:
            # the folder is checked for writability and locked before any work; a checkpoint is read only under
            # the lock (held by rank 0 for all the processes)
            error: BaseException | None = None
            try:
                if resume and not out.exists():
                    raise AstrosnnError(f"cannot resume: {out} does not exist")
                if env.main:
                    stack.enter_context(run_dir(out, resume=resume, interrupted=interrupted_run))
            except AstrosnnError as e:
                error = e
            dist_.agree(error, env)
            trainer = None
            try:
                if resume:
                    cfg = _resumed_config(out, cfg)
                cfg = cfg.normalised()
                if cfg.threads:
                    torch.set_num_threads(cfg.threads)
                trainer = Trainer(cfg, out, resume, corpus, env)
            except AstrosnnError as e:
                if not env.active:
                    raise
                error = e
            dist_.agree(error, env)
            if not resume and env.main:
                _clear_run(out)  # only once the options, the corpus and the model are known to be good
            dist_.barrier(env)
            return trainer.run(stop_at_step, progress, log)
    finally:
        torch.set_num_threads(threads)
        if started:
            dist_.shutdown()


def _pg_initialized() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def interrupted_run(out: Path) -> str | None:
    """A description of the unfinished run whose checkpoint `out` holds ("step 20"), or None."""
    out = Path(out)
    manifest, legacy = out / CHECKPOINT_DIR / MANIFEST, out / TRAIN_JSON
    if not manifest.is_file() and not legacy.is_file():
        return None
    try:
        metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
        if isinstance(metrics, dict) and metrics.get("finished") is True:
            return None
        step = metrics.get("steps") if isinstance(metrics, dict) else None
    except (OSError, ValueError):
        step = None
    return f"step {step}" if isinstance(step, int) else "checkpoint present"


def _clear_run(out: Path) -> None:
    """A fresh run replaces the files of a finished one: nothing of the old run stays beside the new one."""
    for name in ("metrics.json", CONFIG, WEIGHTS, TRAIN_JSON, "training_state.safetensors", TOKENIZER_FILE):
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / CHECKPOINT_DIR, ignore_errors=True)


def saved_train_config(out: str | Path) -> dict[str, Any]:
    """The training options of the run in `out` (from its verified checkpoint), for building a resume config."""
    out = Path(out)
    if not (out / CHECKPOINT_DIR / MANIFEST).is_file():
        if not out.exists():
            raise AstrosnnError(f"cannot resume: {out} does not exist")
        if (out / TRAIN_JSON).is_file():
            raise AstrosnnError(f"cannot resume: {out} was written by an older astrosnn (training state without "
                                f"{CHECKPOINT_DIR}/{MANIFEST}); start a new run (lm generate still reads its model)")
        raise AstrosnnError(f"cannot resume: {out} holds no training checkpoint ({CHECKPOINT_DIR}/{MANIFEST} missing)")
    folder, _ = read_manifest(out)
    where = folder / CONFIG
    saved = read_config(folder).get("train_config")
    if not isinstance(saved, dict):
        raise AstrosnnError(f"{where}: key 'train_config' is missing or not an object")
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    if set(saved) - names:
        raise AstrosnnError(f"{where}: train_config has unknown key(s) {', '.join(sorted(set(saved) - names))}")
    return saved


def _resumed_config(out: Path, given: TrainConfig) -> TrainConfig:
    """`given` with the run length settled: a resume keeps the saved length unless steps / time budget are given.

    Every other option must equal the saved run's (checked against the fingerprint once the corpus is read).
    """
    saved = saved_train_config(out)
    cfg = dataclasses.replace(given, out=str(out))
    if given.steps is None and given.time_budget is None:
        cfg.steps, cfg.time_budget = saved.get("steps"), saved.get("time_budget")
    cfg.eval_every = given.eval_every or saved.get("eval_every")
    cfg.eval_tokens = given.eval_tokens if given.eval_tokens is not None else saved.get("eval_tokens")
    try:
        cfg.validate()
    except AstrosnnError as e:
        raise AstrosnnError(f"{out / CHECKPOINT_DIR / MANIFEST}: the saved training config is invalid ({e})") from None
    return cfg


def _check_run_length(out: Path, cfg: TrainConfig, progress: dict[str, Any]) -> None:
    """A resume must leave something to do: no fewer steps, or no shorter time budget, than already done."""
    done = progress["step"]
    if cfg.steps is not None and cfg.steps < done:
        raise AstrosnnError(f"cannot resume: the run in {out} has done {done} steps, more than steps={cfg.steps}; "
                            f"give --steps {done} or more")  # fmt: skip
    elapsed = progress["elapsed_train"]
    if cfg.time_budget is not None and cfg.time_budget < elapsed:
        raise AstrosnnError(f"cannot resume: the run in {out} has trained {elapsed:.1f} s, more than the time budget "
                            f"of {cfg.time_budget:g} s")  # fmt: skip
