"""`astrosnn lm train | generate | plot`: train language models, sample from checkpoints, plot learning curves.

Help defaults and choices are read from the library (TrainConfig, DEFAULT_SIZE, Sampling, the model registry):
they are stated nowhere else.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from pathlib import Path
from typing import Any

import torch

from astrosnn.commands.options import integer, number, seed, threads
from astrosnn.errors import AstrosnnError
from astrosnn.lm import (
    DEFAULT_SIZE,
    AstroSNNConfig,
    Sampling,
    TrainConfig,
    Vocabulary,
    load_checkpoint,
    model_kinds,
    stream_text,
    train,
)
from astrosnn.lm.training import DEFAULT_TIME_BUDGET, LIMITS, saved_train_config
from astrosnn.rundir import check_not_busy
from astrosnn.viz.lm import plot_learning_curves

NAMED_CORPORA = ("default", "tinyshakespeare", "ptb")


def _default(cls: type, name: str) -> Any:
    """The default of field `name` of dataclass `cls`."""
    return next(f.default for f in dataclasses.fields(cls) if f.name == name)


def add_parser(sub: argparse._SubParsersAction) -> None:
    train_default = lambda name: _default(TrainConfig, name)  # noqa: E731
    p = sub.add_parser("lm", help="AstroSNN language models: train, generate, plot")
    lm = p.add_subparsers(dest="lm_command", metavar="LM_COMMAND")
    lm.required = True

    t = lm.add_parser(
        "train",
        help=f"train a language model (default: {train_default('model')} on the {train_default('corpus')} corpus "
        f"for {DEFAULT_TIME_BUDGET:g} s)",
        description="Train a character- or word-level language model; writes metrics.json and a "
        "checkpoint (model.safetensors + config.json) into --out.",
    )
    t.add_argument("--corpus", default=None,
                   help=f"{' | '.join(NAMED_CORPORA)} | PATH to a UTF-8 text file (default: {train_default('corpus')})")
    # not argparse choices: an unknown model is the library's one-line error, as every other bad option
    t.add_argument("--model", default=None, metavar="|".join(model_kinds()),
                   help=f"one of {', '.join(model_kinds())} (default: {train_default('model')})")
    t.add_argument("--width", type=integer(1, LIMITS["width"]), help=f"model width (default: {DEFAULT_SIZE.width})")
    t.add_argument("--layers", type=integer(1, LIMITS["layers"]), help=f"number of layers / blocks (default: {DEFAULT_SIZE.layers})")
    t.add_argument("--heads", type=integer(1, LIMITS["heads"]), help=f"astrocyte or attention heads (default: {DEFAULT_SIZE.heads}; the LSTM has none)")
    t.add_argument("--params", type=integer(1, LIMITS["params"]), metavar="TARGET", help="pick the width for about TARGET parameters")
    t.add_argument("--dropout", type=float, metavar="P",  # checked by the model config: one line, [0, 1)
                   help=f"dropout rate of any model, in training only (default: {_default(AstroSNNConfig, 'dropout'):g})")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any other field of the model's config, AM-SU fields included (flat or as amsu.KEY), e.g. "
                   "--set token_shift=false --set norm=denominator (values read as JSON, else as text; repeatable)")
    t.add_argument("--seq-len", type=integer(1, LIMITS["seq_len"]), default=None,
                   help="tokens per stream per step: the truncated-BPTT length, the Transformer's context "
                   f"(default: {train_default('seq_len')})")
    t.add_argument("--batch-size", type=integer(1, LIMITS["batch_size"]), default=None, help=f"parallel streams per step (default: {train_default('batch_size')})")
    budget = t.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=integer(1, LIMITS["steps"]), help="optimiser steps")
    budget.add_argument("--time-budget", type=number(0, LIMITS["time_budget"], low_open=True), metavar="SECONDS",
                        help=f"training time in seconds (default: {DEFAULT_TIME_BUDGET:g} when --steps is not given)")
    t.add_argument("--lr", type=number(0, 10, low_open=True), default=None, help=f"peak learning rate (default: {train_default('lr'):g})")
    t.add_argument("--seed", type=seed(), default=None, help=f"(default: {train_default('seed')})")
    t.add_argument("--eval-every", type=integer(1, LIMITS["eval_every"]), metavar="STEPS", help="validate every STEPS steps (default: 10 times per run)")
    t.add_argument("--eval-tokens", type=integer(2, LIMITS["eval_tokens"]), metavar="N",
                   help=f"periodic validations use the first N validation tokens (default: {train_default('eval_tokens')}; "
                   "the final one uses all)")
    t.add_argument("--out", help="run folder (default: runs/lm-MODEL-CORPUS)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    t.add_argument("--data-dir", help="dataset folder (default: $ASTROSNN_DATA or the user cache)")
    t.add_argument("--threads", type=threads(), help="torch threads (default: torch's, one per core; use 1 when other jobs share the CPU: waiting threads stall)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=_train)

    g = lm.add_parser(
        "generate",
        help="generate text from a checkpoint, streaming tokens as they come",
        description="Feed the prompt through the model, then sample token by token carrying the state.",
    )
    g.add_argument("--checkpoint", required=True, metavar="DIR",
                   help="a run folder written by 'astrosnn lm train', or a Hugging Face folder from 'astrosnn lm export'")
    g.add_argument("--prompt", required=True, help="text to continue (characters must be in the model's vocabulary)")
    sampling = Sampling()
    g.add_argument("--max-new-tokens", type=integer(0, 10**7), default=sampling.max_new_tokens,
                   help=f"tokens to generate (default: {sampling.max_new_tokens})")
    g.add_argument("--temperature", type=number(0, 100), default=sampling.temperature,
                   help=f"0 = greedy (default: {sampling.temperature:g})")
    g.add_argument("--top-k", type=integer(1, 10**7), default=sampling.top_k, help="sample among the k most likely tokens")
    g.add_argument("--seed", type=seed(), default=sampling.seed)
    g.add_argument("--threads", type=threads(), default=1, help="torch threads (default: 1, fastest for one token at a time)")
    g.set_defaults(func=_generate)

    _add_export_parser(lm)

    pl = lm.add_parser("plot", help="plot learning curves of one or more run folders")
    pl.add_argument("runs", nargs="+", metavar="DIR", help="run folders holding metrics.json")
    pl.add_argument("--out", required=True, help="PNG file to write")
    pl.set_defaults(func=_plot)


# options that define a run: a resume must repeat them (given ones are compared with the saved run's)
_RUN_OPTIONS = ("corpus", "model", "width", "layers", "heads", "seq_len", "batch_size", "lr", "seed", "params")
# options a resume may change
_RESUME_OPTIONS = ("steps", "time_budget", "eval_every", "eval_tokens", "threads", "data_dir")


def _train(args: argparse.Namespace) -> int:
    options = _parse_sets(args.set)
    if args.dropout is not None:
        options["dropout"] = args.dropout
    given = {name: getattr(args, name) for name in _RUN_OPTIONS if getattr(args, name) is not None}
    later = {name: getattr(args, name) for name in _RESUME_OPTIONS}
    model = args.model or _default(TrainConfig, "model")
    corpus = args.corpus or _default(TrainConfig, "corpus")
    corpus_tag = Path(corpus).stem if corpus not in NAMED_CORPORA else corpus
    out = args.out or f"runs/lm-{model}-{corpus_tag}"
    if args.resume:
        # the saved run's options, with those given on this command line: a changed one is refused by name
        check_not_busy(out)
        saved = saved_train_config(out)
        if options:
            given["model_options"] = {**(saved.get("model_options") or {}), **options}
        cfg = TrainConfig(**{**saved, **given, **later, "out": out})
    else:
        # a bad option fails here, before any data is read
        cfg = TrainConfig(**given, **{k: v for k, v in later.items() if v is not None}, model_options=options, out=out)
    metrics = train(cfg, resume=args.resume, progress=not args.quiet)
    final = metrics["final_validation"]
    print(f"validation {metrics['metric'].replace('_', ' ')}: {final[metrics['metric']]:.4f}")
    return 0


def _parse_sets(items: list[str]) -> dict:
    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise AstrosnnError(f"--set expects KEY=VALUE, got {item!r}")
        if key.strip() in ("vocab_size", "model_config.vocab_size"):
            raise AstrosnnError("--set: vocab_size is not an option: the corpus's vocabulary sets it")
        try:
            options[key.strip()] = json.loads(value)
        except (ValueError, RecursionError):  # JSONDecodeError, over-long integers
            options[key.strip()] = value
        parsed = options[key.strip()]
        if isinstance(parsed, float) and not math.isfinite(parsed) or (isinstance(parsed, int) and abs(parsed) > 2**63):
            raise AstrosnnError(f"--set {key.strip()}: {value} is not a usable number")
    return options


def _generate(args: argparse.Namespace) -> int:
    if args.prompt == "":
        raise AstrosnnError("the prompt is empty: give at least one character")
    torch.set_num_threads(args.threads)
    sampling = dict(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_k=args.top_k, seed=args.seed)
    if _is_hf_folder(args.checkpoint):
        pieces = _hf_pieces(args.checkpoint, args.prompt, sampling)
    else:
        ckpt = load_checkpoint(args.checkpoint)
        if not ckpt.verified:
            print(f"astrosnn: note: {args.checkpoint} was written before checksums were stored: its files are not "
                  "verified", file=sys.stderr)  # fmt: skip
        pieces = stream_text(ckpt.model, Vocabulary(ckpt.vocab, ckpt.level), args.prompt, **sampling)
    first = next(pieces, None)  # errors in the prompt surface before anything is printed
    sys.stdout.write(args.prompt)
    if first is not None:
        sys.stdout.write(first)
    sys.stdout.flush()
    for piece in pieces:
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    return 0


# ------------------------------------------------------------------- Hugging Face (the optional hf extra)


def _add_export_parser(lm: argparse._SubParsersAction) -> None:
    e = lm.add_parser(
        "export",
        help="export a checkpoint as a Hugging Face folder (needs the hf extra: pip install 'astrosnn[hf]')",
        description="Write a checkpoint as a Hugging Face folder (config.json, model.safetensors, tokenizer, "
        "modeling_astrosnn.py for trust_remote_code) that AutoModelForCausalLM, generate() and "
        "lm-evaluation-harness load.",
    )
    e.add_argument("--checkpoint", required=True, metavar="DIR", help="a run folder written by 'astrosnn lm train'")
    e.add_argument("--hf", required=True, metavar="OUT", help="folder to write (created if needed)")
    e.add_argument("--tokenizer", metavar="FILE",
                   help="a tokenizers JSON file (e.g. a trained BPE) to ship instead of the checkpoint's vocabulary")
    e.add_argument("--eos-token", metavar="TOKEN",
                   help="the end-of-text token, an existing one (default: \\n for characters, <eos> for words)")
    e.set_defaults(func=_export)


def _export(args: argparse.Namespace) -> int:
    from astrosnn.hf import export_checkpoint

    out = export_checkpoint(args.checkpoint, args.hf, tokenizer_file=args.tokenizer, eos_token=args.eos_token)
    print(f"wrote {out}")
    return 0


def _is_hf_folder(directory: str) -> bool:
    """A folder whose config.json is a Hugging Face one (no transformers import needed to tell)."""
    try:
        config = json.loads((Path(directory) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and "model_type" in config and "format" not in config


def _hf_pieces(directory: str, prompt: str, sampling: dict[str, Any]) -> Any:
    """The generated pieces of an exported folder: the native model and sampling, as for a checkpoint."""
    from astrosnn.hf import load_hf_folder
    from astrosnn.lm.generation import stream_ids

    loaded = load_hf_folder(directory)
    if loaded.vocab is not None:
        return stream_text(loaded.model, Vocabulary(loaded.vocab, loaded.level), prompt, **sampling)

    def decoded() -> Any:  # a tokenizer file (BPE ...): decode the text so far, yield what it adds
        ids = loaded.tokenizer.encode(prompt, add_special_tokens=False)
        new: list[int] = []
        shown = ""
        for token in stream_ids(loaded.model, ids, **sampling):
            new.append(token)
            text = loaded.tokenizer.decode(new, clean_up_tokenization_spaces=False)
            if not text.endswith("\ufffd"):  # wait for a split multi-byte character to complete
                yield text[len(shown):]
                shown = text

    return decoded()


def _plot(args: argparse.Namespace) -> int:
    path = plot_learning_curves(args.runs, args.out)
    print(f"wrote {path}")
    return 0
