"""`astrosnn lm train | generate | plot`: train language models, sample from checkpoints, plot learning curves."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

MODELS = "astrosnn, lif-snn, lstm, transformer"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("lm", help="AstroSNN language models: train, generate, plot")
    lm = p.add_subparsers(dest="lm_command", metavar="LM_COMMAND")
    lm.required = True

    t = lm.add_parser(
        "train",
        help="train a language model (default: AstroSNN on the embedded corpus for 60 s)",
        description="Train a character- or word-level language model; writes metrics.json and a "
        "checkpoint (model.safetensors + config.json) into --out.",
    )
    t.add_argument("--corpus", default="default", help="default | tinyshakespeare | ptb | PATH to a UTF-8 text file (default: default)")
    t.add_argument("--model", default="astrosnn", help=f"one of {MODELS} (default: astrosnn)")
    t.add_argument("--width", type=int, help="model width (default: 96)")
    t.add_argument("--layers", type=int, help="number of layers / blocks (default: 2)")
    t.add_argument("--heads", type=int, help="astrocyte or attention heads (default: 4; the LSTM has none)")
    t.add_argument("--params", type=int, metavar="TARGET", help="pick the width for about TARGET parameters")
    t.add_argument("--dropout", type=float, metavar="P", help="dropout rate of any model, in training only (default: 0)")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any other field of the model's config, e.g. --set token_shift=false --set norm=denominator "
                   "(values read as JSON, else as text; repeatable)")
    t.add_argument("--seq-len", type=int, default=None, help="tokens per stream per step: the truncated-BPTT length, the Transformer's context (default: 64)")
    t.add_argument("--batch-size", type=int, default=None, help="parallel streams per step (default: 16)")
    budget = t.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=int, help="optimiser steps")
    budget.add_argument("--time-budget", type=float, metavar="SECONDS", help="training time in seconds (default: 60 when --steps is not given)")
    t.add_argument("--lr", type=float, default=None, help="peak learning rate (default: 5e-3)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--eval-every", type=int, metavar="STEPS", help="validate every STEPS steps (default: 10 times per run)")
    t.add_argument("--eval-tokens", type=int, metavar="N", help="periodic validations use the first N validation tokens (default: 8192; the final one uses all)")
    t.add_argument("--out", help="run folder (default: runs/lm-MODEL-CORPUS)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    t.add_argument("--data-dir", help="dataset folder (default: $ASTROSNN_DATA or the user cache)")
    t.add_argument("--threads", type=int, help="torch threads (default: torch's, one per core; use 1 when other jobs share the CPU: waiting threads stall)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=_train)

    g = lm.add_parser(
        "generate",
        help="generate text from a checkpoint, streaming tokens as they come",
        description="Feed the prompt through the model, then sample token by token carrying the state.",
    )
    g.add_argument("--checkpoint", required=True, metavar="DIR", help="a run folder written by 'astrosnn lm train'")
    g.add_argument("--prompt", required=True, help="text to continue (characters must be in the model's vocabulary)")
    g.add_argument("--max-new-tokens", type=int, default=300)
    g.add_argument("--temperature", type=float, default=0.8, help="0 = greedy (default: 0.8)")
    g.add_argument("--top-k", type=int, default=None, help="sample among the k most likely tokens")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--threads", type=int, default=1, help="torch threads (default: 1, fastest for one token at a time)")
    g.set_defaults(func=_generate)

    pl = lm.add_parser("plot", help="plot learning curves of one or more run folders")
    pl.add_argument("runs", nargs="+", metavar="DIR", help="run folders holding metrics.json")
    pl.add_argument("--out", required=True, help="PNG file to write")
    pl.set_defaults(func=_plot)


def _train(args: argparse.Namespace) -> int:
    from astrosnn.lm.train import TrainConfig, train

    cfg = TrainConfig(
        corpus=args.corpus,
        model=args.model,
        width=args.width,
        steps=args.steps,
        time_budget=args.time_budget,
        seed=args.seed,
        eval_every=args.eval_every,
        data_dir=args.data_dir,
        params=args.params,
    )
    cfg.model_options = _parse_sets(args.set)
    if args.dropout is not None:
        cfg.model_options["dropout"] = args.dropout
    for name in ("layers", "heads", "seq_len", "batch_size", "lr", "threads", "eval_tokens"):
        if getattr(args, name) is not None:
            setattr(cfg, name, getattr(args, name))
    corpus_tag = Path(args.corpus).stem if args.corpus not in ("default", "tinyshakespeare", "ptb") else args.corpus
    cfg.out = args.out or f"runs/lm-{args.model}-{corpus_tag}"
    if not args.resume:
        cfg.validate()  # bad options fail before any data is read
    metrics = train(cfg, resume=args.resume, progress=not args.quiet)
    final = metrics["final_validation"]
    print(f"validation {metrics['metric'].replace('_', ' ')}: {final[metrics['metric']]:.4f}")
    return 0


def _parse_sets(items: list[str]) -> dict:
    import json

    from astrosnn.errors import AstrosnnError

    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise AstrosnnError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            options[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            options[key.strip()] = value
    return options


def _generate(args: argparse.Namespace) -> int:
    import torch

    from astrosnn.errors import AstrosnnError
    from astrosnn.lm.checkpoint import load_checkpoint
    from astrosnn.lm.generate import Vocabulary, stream_text

    if args.prompt == "":
        raise AstrosnnError("the prompt is empty: give at least one character")
    if args.threads < 1:
        raise AstrosnnError(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    ckpt = load_checkpoint(args.checkpoint)
    pieces = stream_text(
        ckpt.model,
        Vocabulary(ckpt.vocab, ckpt.level),
        args.prompt,
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_k=args.top_k,
        seed=args.seed,
    )
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


def _plot(args: argparse.Namespace) -> int:
    from astrosnn.viz.lm import plot_learning_curves

    path = plot_learning_curves(args.runs, args.out)
    print(f"wrote {path}")
    return 0
