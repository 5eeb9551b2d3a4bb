"""`astrosnn lm train | generate | plot`: train language models, sample from checkpoints, plot learning curves.

Help defaults and choices are read from the library (TrainConfig, DEFAULT_SIZE, Sampling, the model registry):
they are stated nowhere else.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
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
    _add_scale_options(t)
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
    _add_scale_commands(lm)


# options that define a run: a resume must repeat them (given ones are compared with the saved run's)
_RUN_OPTIONS = ("corpus", "model", "width", "layers", "heads", "seq_len", "batch_size", "lr", "seed", "params",
                "global_batch", "preset")  # fmt: skip
# options a resume may change
_RESUME_OPTIONS = ("steps", "time_budget", "eval_every", "eval_tokens", "threads", "data_dir", "parallel", "precision",
                   "activation_checkpointing")  # fmt: skip


def _train(args: argparse.Namespace) -> int:
    options = _parse_sets(args.set)
    if args.dropout is not None:
        options["dropout"] = args.dropout
    _apply_preset(args)
    given = {name: getattr(args, name) for name in _RUN_OPTIONS if getattr(args, name) is not None}
    later = {name: getattr(args, name) for name in _RESUME_OPTIONS}
    for name in ("parallel", "precision", "activation_checkpointing"):
        if not later[name]:
            del later[name]  # not given: the saved run's (or the default)
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
    metrics = train(cfg, resume=args.resume, progress=not args.quiet, stop_at_step=args.stop_at_step)
    final = metrics["final_validation"]
    if final is not None and os.environ.get("RANK", "0") == "0":
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
        if ckpt.level == "bpe":
            return _generate_bpe(args, ckpt)
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


# ------------------------------------------------------------------ scaling up: prepare, many processes, presets


def _add_scale_options(t: argparse.ArgumentParser) -> None:
    from astrosnn.lm.distributed import PARALLEL, PRECISIONS
    from astrosnn.lm.presets import preset_names

    t.add_argument("--preset", metavar="|".join(preset_names()),
                   help="a model size: sets width, layers, heads and (unless given) --seq-len; see 'lm plan'")
    t.add_argument("--global-batch", type=integer(1, LIMITS["batch_size"] * 64), metavar="ROWS",
                   help="rows per optimiser step over all processes; --batch-size is then the per-process micro-batch, "
                   "accumulated to it (default: processes x --batch-size)")
    t.add_argument("--parallel", metavar="|".join(PARALLEL),
                   help="with several processes (torchrun): DDP, or FSDP2 (fully_shard per block) (default: ddp)")
    t.add_argument("--precision", metavar="|".join(PRECISIONS), help="bf16 autocast (CUDA only) or fp32 (default: bf16 "
                   "on CUDA, fp32 on CPU)")
    t.add_argument("--activation-checkpointing", action="store_true",
                   help="recompute each block's activations in the backward pass (less memory, same gradients)")
    t.add_argument("--stop-at-step", type=integer(0, LIMITS["steps"]), help=argparse.SUPPRESS)  # tests: a kill


def _apply_preset(args: argparse.Namespace) -> None:
    if getattr(args, "preset", None) is None:
        return
    from astrosnn.lm.presets import get_preset

    preset = get_preset(args.preset)
    clash = [f"--{n}" for n in ("width", "layers", "heads", "params") if getattr(args, n) is not None]
    if clash:
        raise AstrosnnError(f"--preset {preset.name} sets the model size: drop {', '.join(clash)}")
    args.width, args.layers, args.heads = preset.width, preset.layers, preset.heads
    if args.seq_len is None:
        args.seq_len = preset.context


def _add_scale_commands(lm: argparse._SubParsersAction) -> None:
    from astrosnn.data.tokenizer import MAX_VOCAB

    pr = lm.add_parser(
        "prepare",
        help="encode a corpus into token files (char or BPE) for 'lm train --corpus DIR'",
        description="Tokenize a corpus once into DIR: train/validation token files (uint16 or uint32), the tokenizer "
        "and manifest.json (sizes and sha256 of every file). Training reads the files through np.memmap.",
    )
    pr.add_argument("--corpus", required=True, help=f"{' | '.join(NAMED_CORPORA)} | PATH to a UTF-8 text file or a "
                    "folder of .txt files")
    pr.add_argument("--tokenizer", default="char", metavar="char|bpe", help="character ids, or byte-level BPE trained "
                    "on the train split (default: char)")
    pr.add_argument("--vocab-size", type=integer(1, MAX_VOCAB), metavar="N",
                    help="BPE vocabulary (default 4096, at least 256); for char, an upper bound")
    pr.add_argument("--out", required=True, metavar="DIR", help="folder to write")
    pr.add_argument("--validation-fraction", type=number(0, 1, low_open=True, high_open=True), metavar="F",
                    help="last fraction of a text file's bytes used for validation (default: 0.1)")
    pr.add_argument("--tokenizer-file", metavar="PATH", help="reuse a tokenizer.json (bpe) or vocab.json (char)")
    pr.add_argument("--dtype", metavar="uint16|uint32", help="token file type (default: uint16 when the vocabulary "
                    "fits, else uint32)")
    pr.add_argument("--data-dir", help="dataset folder for named corpora (default: $ASTROSNN_DATA or the user cache)")
    pr.add_argument("--no-verify", action="store_true", help="skip the checksum of a downloaded named corpus")
    pr.set_defaults(func=_prepare)

    pl = lm.add_parser(
        "plan",
        help="size a run: parameters, memory per process (DDP, FSDP), FLOPs per token, tokens/s here",
        description="Print what a preset needs before renting GPUs: parameters, memory per process under DDP and "
        "FSDP with K processes, FLOPs per token, and the tokens/s of a short forward+backward on this machine.",
    )
    from astrosnn.lm.presets import DEFAULT_PLAN_VOCAB, preset_names

    pl.add_argument("--preset", required=True, metavar="|".join(preset_names()))
    pl.add_argument("--nproc", type=integer(1, 1 << 20), default=1, metavar="K", help="processes (GPUs) (default: 1)")
    pl.add_argument("--vocab-size", type=integer(1, 1 << 24), metavar="V",
                    help=f"vocabulary (default: the preset's: 65 characters, 4,096 or {DEFAULT_PLAN_VOCAB:,} BPE tokens)")
    pl.add_argument("--seq-len", type=integer(1, LIMITS["seq_len"]), help="tokens per row (default: the preset's context)")
    pl.add_argument("--batch-size", type=integer(1, LIMITS["batch_size"]), default=8,
                    help="micro-batch rows per process (default: 8)")
    pl.add_argument("--no-measure", action="store_true", help="skip the timed forward+backward on this machine")
    pl.add_argument("--measure-seq-len", type=integer(1, 4096), default=32, help=argparse.SUPPRESS)
    pl.add_argument("--threads", type=threads(), help="torch threads for the measurement")
    pl.set_defaults(func=_plan)

    ex = lm.add_parser(
        "export-checkpoint",
        help="write the model of a run's last checkpoint (one process or many) as one safetensors folder",
        description="Read OUT/checkpoint (a distributed checkpoint of any number of processes, or a one-process "
        "one), check it, and write model.safetensors + config.json into DEST (what 'lm generate' reads).",
    )
    ex.add_argument("--run", required=True, metavar="OUT", help="a run folder written by 'astrosnn lm train'")
    ex.add_argument("--to", required=True, metavar="DEST", help="folder to write")
    ex.set_defaults(func=_export_checkpoint)


def _prepare(args: argparse.Namespace) -> int:
    from astrosnn.data.tokens import prepare_corpus

    manifest = prepare_corpus(args.corpus, args.out, tokenizer=args.tokenizer, vocab_size=args.vocab_size,
                              validation_fraction=args.validation_fraction, data_dir=args.data_dir,
                              tokenizer_path=args.tokenizer_file, dtype=args.dtype, verify=not args.no_verify)  # fmt: skip
    splits = ", ".join(f"{k} {v.tokens:,} tokens ({v.bytes_per_token:.2f} bytes/token)" for k, v in manifest.splits.items())
    print(f"wrote {manifest.folder}: {manifest.tokenizer} tokenizer, vocabulary {manifest.vocab_size:,}, "
          f"{manifest.dtype}; {splits}")  # fmt: skip
    return 0


def _plan(args: argparse.Namespace) -> int:
    from astrosnn.lm.presets import format_plan, plan

    if args.threads:
        torch.set_num_threads(args.threads)
    result = plan(args.preset, nproc=args.nproc, vocab_size=args.vocab_size, seq_len=args.seq_len,
                  batch_size=args.batch_size, measure=not args.no_measure, measure_seq_len=args.measure_seq_len)  # fmt: skip
    print(format_plan(result))
    return 0


def _export_checkpoint(args: argparse.Namespace) -> int:
    from astrosnn.lm.checkpoint import export_model, read_manifest

    folder, _ = read_manifest(args.run)  # every file's checksum checked
    load_checkpoint(folder)  # the model files: config, shapes, finite values
    dest = Path(args.to)
    dest.mkdir(parents=True, exist_ok=True)
    export_model(folder, dest)
    print(f"wrote {dest / 'model.safetensors'} and {dest / 'config.json'} (from {folder})")
    return 0


def _generate_bpe(args: argparse.Namespace, ckpt: Any) -> int:
    """Generation from a BPE model: the prompt encoded and the text decoded by the tokenizer stored beside it."""
    from astrosnn.data.tokenizer import bpe_encode, load_bpe
    from astrosnn.lm.generation import stream_ids

    tok = load_bpe(Path(args.checkpoint) / ckpt.config["tokenizer"]["file"])  # its sha256 checked on load
    prompt_ids = bpe_encode(tok, [args.prompt]).tolist()
    ids = stream_ids(ckpt.model, prompt_ids, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                     top_k=args.top_k, seed=args.seed)  # fmt: skip
    new: list[int] = []
    shown = ""
    sys.stdout.write(args.prompt)
    for i in ids:
        new.append(i)
        text = tok.decode(new, skip_special_tokens=False)
        if not text.endswith("\ufffd"):  # a character cut between tokens waits for its other bytes
            sys.stdout.write(text[len(shown):])
            sys.stdout.flush()
            shown = text
    sys.stdout.write(tok.decode(new, skip_special_tokens=False)[len(shown):] + "\n")
    return 0
