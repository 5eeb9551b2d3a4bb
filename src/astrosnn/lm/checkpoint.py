"""Language-model checkpoints: safetensors for tensors, JSON for everything else; never pickle.

A model folder (the run folder ``OUT`` itself, read by ``lm generate --checkpoint OUT``) holds
- `config.json`: format tag, model kind and config, vocabulary, training config, versions, step (the model
  config is nested, e.g. AstroSNN's AM-SU fields under `amsu`; the flat form of older checkpoints loads too),
  and two checksums: ``weights_sha256`` (of `model.safetensors`) and ``config_sha256`` (of config.json's own
  content, canonical JSON without that key: a change of layout keeps it, any change of a value does not);
- `model.safetensors`: the weights (metadata repeats the kind and step).

A training checkpoint, for ``--resume``, is one atomic unit under ``OUT/checkpoint/``:
``step-00000123/{model.safetensors, config.json, training_state.safetensors, training_state.json}`` is written
and flushed completely, then ``manifest.json`` (the step, the folder and every file's sha256 and size) is
switched to it with one rename, then older step folders are removed. A kill at any moment leaves the previous
complete step in force. `training_state.*` hold the optimizer moments, torch RNG state, the recurrent state
carried between batches, the progress so far and the run's fingerprint (the options a resume must repeat).

On load, every file is checked: checksums, JSON fields (presence and type), tensor names and shapes against the
config, finite values, vocabulary size against the model's head. Each fault is one AstrosnnError naming the
file. Folders written before checksums existed (format_version 1) still load for generation, unverified
(`LoadedCheckpoint.verified` is False); their training state cannot be resumed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from torch import nn

from astrosnn.errors import AstrosnnError, plain
from astrosnn.lm.registry import count_parameters, model_from_config_dict, model_kinds
from astrosnn.lm.state import flatten_state, unflatten_like
from astrosnn.runinfo import (
    atomic_write_bytes,
    atomic_write_json,
    fsync_dir,
    json_sha256,
    load_json,
    load_tensors,
    save_tensors,
    sha256_file,
)

FORMAT = "astrosnn-lm-checkpoint"
FORMAT_VERSION = 2  # 2: checksums in config.json, training state under checkpoint/ with a manifest
CONFIG = "config.json"
WEIGHTS = "model.safetensors"
TRAIN_TENSORS = "training_state.safetensors"
TRAIN_JSON = "training_state.json"
CHECKPOINT_DIR = "checkpoint"
MANIFEST = "manifest.json"
MANIFEST_FORMAT = "astrosnn-lm-training-checkpoint"
STEP_FILES = (WEIGHTS, CONFIG, TRAIN_TENSORS, TRAIN_JSON)
TOKENIZER_FILE = "tokenizer.json"  # a BPE model's tokenizer, beside its weights (hashed in config.json)
DCP_DIR = "dcp"  # the sharded model + optimizer state of a multi-process run (torch.distributed.checkpoint)
LEVELS = ("char", "word", "bpe")
_EXTRA_RE = re.compile(r"^(tokenizer\.json|dcp/[A-Za-z0-9_.][A-Za-z0-9_.-]*)$")
_STEP_RE = re.compile(r"^step-\d{8}(-\d+)?$")
_BAD_CONFIG = (TypeError, ValueError, KeyError, IndexError, AttributeError, RuntimeError, OverflowError,
               ZeroDivisionError, RecursionError)  # fmt: skip


# ------------------------------------------------------------------------------------ field checks


def _type_name(types: type | tuple[type, ...]) -> str:
    types = types if isinstance(types, tuple) else (types,)
    names = {bool: "true/false", int: "an integer", float: "a number", str: "text", list: "a list", dict: "an object",
             type(None): "null"}  # fmt: skip
    return " or ".join(names.get(t, t.__name__) for t in types)


def field(d: dict[str, Any], key: str, types: type | tuple[type, ...], where: Path | str, *, optional: bool = False,
          default: Any = None) -> Any:  # fmt: skip
    """d[key] checked for presence and type (bool is not an int here; an int is a number); one line naming
    `where` and the key otherwise."""
    if key not in d:
        if optional:
            return default
        raise AstrosnnError(f"{where}: key {key!r} is missing")
    value = d[key]
    allowed = types if isinstance(types, tuple) else (types,)
    ok = isinstance(value, allowed) and not (isinstance(value, bool) and bool not in allowed)
    if not ok and float in allowed and isinstance(value, int) and not isinstance(value, bool):
        ok = True
    if not ok:
        raise AstrosnnError(f"{where}: key {key!r} must be {_type_name(types)}, got {plain(value)[:60]}")
    if isinstance(value, float) and not math.isfinite(value):
        raise AstrosnnError(f"{where}: key {key!r} is {value}, not a finite number")
    return value


def _count(d: dict[str, Any], key: str, where: Path | str, optional: bool = False) -> int | None:
    value = field(d, key, int, where, optional=optional)
    if value is not None and value < 0:
        raise AstrosnnError(f"{where}: key {key!r} must be >= 0, got {value}")
    return value


def check_finite(tensors: dict[str, torch.Tensor], where: Path | str) -> None:
    """Refuse NaN or infinite values, naming the first tensor that holds one."""
    for name, t in tensors.items():
        if (t.is_floating_point() or t.is_complex()) and t.numel() and not bool(torch.isfinite(t).all()):
            bad = int((~torch.isfinite(t)).sum())
            raise AstrosnnError(f"{where}: tensor {name} holds {bad} non-finite value(s) (NaN or infinity)")


def _header(path: Path) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
    """Tensor names and shapes, and the metadata, of a safetensors file, without reading the data."""
    if not path.is_file():
        raise AstrosnnError(f"{path}: file not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
            meta = dict(f.metadata() or {})
    except Exception as e:  # noqa: BLE001 - safetensors raises several types for a damaged header
        raise AstrosnnError(f"{path}: not a valid safetensors file ({str(e).splitlines()[0][:200]})") from None
    return shapes, meta


# ------------------------------------------------------------------------------------ model folders


@dataclass
class LoadedCheckpoint:
    model: nn.Module
    kind: str
    vocab: tuple[str, ...]
    level: str  # "char" | "word"
    config: dict[str, Any]  # the whole config.json
    step: int
    verified: bool = True  # False: written before checksums existed (format_version 1); not verified


def save_checkpoint(
    directory: str | Path,
    model: nn.Module,
    *,
    vocab: tuple[str, ...] | list[str],
    level: str,
    step: int = 0,
    extra: dict[str, Any] | None = None,
    tokenizer: bytes | None = None,
    weights: dict[str, torch.Tensor] | None = None,
) -> None:
    """Write `model.safetensors` (and `tokenizer.json` when given: a BPE model's tokenizer) then `config.json`
    (with the checksums of both, and its own) into `directory` (created if needed). `weights`: the model's full
    state dict when `model` holds shards (gathered by a multi-process run)."""
    directory = Path(directory)
    # clone: tied weights share storage, which safetensors refuses to write twice
    source = model.state_dict() if weights is None else weights
    weights = {k: v.detach().clone().cpu() for k, v in source.items()}
    tok_entry = None
    if tokenizer is not None:
        atomic_write_bytes(directory / TOKENIZER_FILE, tokenizer)
        tok_entry = {"file": TOKENIZER_FILE, "sha256": sha256_file(directory / TOKENIZER_FILE)}
    save_tensors(directory / WEIGHTS, weights, metadata={"format": FORMAT, "kind": model.kind, "step": str(step)})
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": model.kind,
        "model_config": dataclasses.asdict(model.config),
        "vocab": list(vocab),
        "level": level,
        "step": step,
        "parameters": count_parameters(model),
        **(extra or {}),
        "weights_sha256": sha256_file(directory / WEIGHTS),
    }
    if tok_entry is not None:
        config["tokenizer"] = tok_entry
    config = json.loads(json.dumps(config, default=str))  # as it will read back
    config["config_sha256"] = json_sha256(config)
    atomic_write_json(directory / CONFIG, config)


def read_config(directory: str | Path) -> dict[str, Any]:
    """config.json of a model folder, every field the loader uses checked (presence, type, checksum)."""
    directory = Path(directory)
    if not directory.exists():
        raise AstrosnnError(f"checkpoint {directory}: no such folder")
    if not directory.is_dir():
        raise AstrosnnError(f"checkpoint {directory}: not a folder (pass the run folder holding {CONFIG})")
    where = directory / CONFIG
    config = load_json(where)
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise AstrosnnError(f"{where}: not an astrosnn language-model checkpoint")
    version = field(config, "format_version", int, where, optional=True, default=1)
    if version not in (1, FORMAT_VERSION):
        raise AstrosnnError(f"{where}: format_version {version} is not one this astrosnn reads (1 or {FORMAT_VERSION})")
    if version >= 2 or "config_sha256" in config or "weights_sha256" in config:  # no downgrade by an edit
        stored = field(config, "config_sha256", str, where)
        actual = json_sha256({k: v for k, v in config.items() if k != "config_sha256"})
        if stored != actual:
            raise AstrosnnError(f"{where}: content differs from its checksum (config_sha256): the file was damaged "
                                "or edited")  # fmt: skip
        field(config, "weights_sha256", str, where)
    kind = field(config, "kind", str, where)
    if kind not in model_kinds():
        raise AstrosnnError(f"{where}: unknown model kind {kind!r}")
    vocab = field(config, "vocab", list, where)
    if not vocab or not all(isinstance(t, str) for t in vocab):
        raise AstrosnnError(f"{where}: key 'vocab' must be a non-empty list of texts")
    if len(set(vocab)) != len(vocab):
        raise AstrosnnError(f"{where}: key 'vocab' lists a token twice")
    if field(config, "level", str, where) not in LEVELS:
        raise AstrosnnError(f"{where}: key 'level' must be 'char', 'word' or 'bpe', got {config['level']!r}")
    if config["level"] == "bpe" or "tokenizer" in config:
        tok = field(config, "tokenizer", dict, where)
        if field(tok, "file", str, f"{where} (tokenizer)") != TOKENIZER_FILE:
            raise AstrosnnError(f"{where}: tokenizer.file must be {TOKENIZER_FILE!r}")
        field(tok, "sha256", str, f"{where} (tokenizer)")
    _count(config, "step", where)
    field(config, "model_config", dict, where)
    return config


def _meta_model(kind: str, model_config: dict[str, Any], where: Path | str) -> nn.Module:
    """The model a config describes, built on the meta device: shapes without memory or random draws."""
    rng = torch.get_rng_state()
    try:
        with torch.device("meta"):
            return model_from_config_dict(kind, model_config)
    except AstrosnnError as e:
        raise AstrosnnError(f"{where}: {e}") from None
    except _BAD_CONFIG as e:
        raise AstrosnnError(f"{where}: model_config does not describe a {kind} model ({e})") from None
    finally:
        torch.set_rng_state(rng)


def load_checkpoint(directory: str | Path, kind: str | None = None) -> LoadedCheckpoint:
    """Rebuild the model from `config.json` and load its weights; any mismatch is an AstrosnnError.

    `kind`, when given, must match the checkpoint's model kind. Checked before any weight is used: config.json's
    fields and checksum, the tensors' names and shapes against the config, the weights' checksum, finite values,
    the vocabulary against the model's head.
    """
    directory = Path(directory)
    config = read_config(directory)
    where, wpath = directory / CONFIG, directory / WEIGHTS
    if kind is not None and config["kind"] != kind:
        raise AstrosnnError(f"checkpoint {directory} holds a {config['kind']} model, not {kind}")
    verified = "config_sha256" in config  # read_config has checked it
    meta_model = _meta_model(config["kind"], config["model_config"], where)
    head = getattr(meta_model.config, "vocab_size", None)
    if head != len(config["vocab"]):
        raise AstrosnnError(f"{where}: the vocabulary has {len(config['vocab'])} tokens but the model's head has "
                            f"{head} (model_config.vocab_size)")  # fmt: skip
    shapes, meta = _header(wpath)
    expected = {k: tuple(v.shape) for k, v in meta_model.state_dict().items()}
    _check_names(expected, shapes, wpath, meta_model.kind)
    for name, shape in expected.items():
        if shapes[name] != shape:
            raise AstrosnnError(f"{wpath}: tensor {name} has shape {shapes[name]}, {CONFIG} describes {shape}")
    if verified and sha256_file(wpath) != config["weights_sha256"]:
        raise AstrosnnError(f"{wpath}: content differs from the checksum in {CONFIG} (weights_sha256): the file was "
                            "damaged, or replaced without its config")  # fmt: skip
    if meta.get("kind") != config["kind"]:
        raise AstrosnnError(f"{wpath}: weights of a {meta.get('kind')} model, config says {config['kind']}")
    if meta.get("step") != str(config.get("step")):
        raise AstrosnnError(f"{directory}: weights (step {meta.get('step')}) and config (step {config.get('step')}) disagree")
    if "tokenizer" in config:
        tpath = directory / TOKENIZER_FILE
        if not tpath.is_file():
            raise AstrosnnError(f"{tpath}: file not found (the model's tokenizer)")
        if sha256_file(tpath) != config["tokenizer"]["sha256"]:
            raise AstrosnnError(f"{tpath}: content differs from the checksum in {CONFIG} (tokenizer.sha256)")
    weights = load_tensors(wpath)
    check_finite(weights, wpath)
    state = torch.get_rng_state()
    try:
        model = model_from_config_dict(config["kind"], config["model_config"])
    finally:
        torch.set_rng_state(state)  # building a model to overwrite its weights draws no numbers
    load_weights(model, weights, wpath)
    model.eval()
    return LoadedCheckpoint(model, config["kind"], tuple(config["vocab"]), config["level"], config, int(config["step"]),
                            verified)  # fmt: skip


def _check_names(expected: Any, found: Any, where: Path | str, kind: str) -> None:
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}")
        if unexpected:
            parts.append(f"unexpected {', '.join(unexpected[:3])}{' ...' if len(unexpected) > 3 else ''}")
        raise AstrosnnError(f"{where}: weights do not fit a {kind} model ({'; '.join(parts)})")


def load_weights(model: nn.Module, weights: dict[str, torch.Tensor], where: Path | str) -> None:
    """Put `weights` into `model`: same names, shapes and dtypes, finite values, or one line naming the tensor."""
    expected = model.state_dict()
    _check_names(expected, weights, where, model.kind)
    for name, tensor in expected.items():
        if weights[name].shape != tensor.shape:
            raise AstrosnnError(
                f"{where}: {name} has shape {tuple(weights[name].shape)}, the model expects {tuple(tensor.shape)}"
            )
        if weights[name].dtype != tensor.dtype:
            raise AstrosnnError(f"{where}: {name} has dtype {weights[name].dtype}, the model expects {tensor.dtype}")
    check_finite(weights, where)
    model.load_state_dict(weights, strict=True)


# ----------------------------------------------------------------------------------- training state


def save_training_state(
    directory: str | Path,
    optimizer: torch.optim.Optimizer,
    carried_state: Any,
    progress: dict[str, Any],
    fingerprint: dict[str, Any] | None = None,
) -> None:
    """Optimizer moments, torch RNG, carried recurrent state, progress and the run's fingerprint."""
    directory = Path(directory)
    opt = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {"rng.torch": torch.get_rng_state()}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, entry in opt["state"].items():
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{idx}.{key}"] = value
            else:
                scalars.setdefault(str(idx), {})[key] = value
    leaves = flatten_state(carried_state) if carried_state is not None else []
    for i, leaf in enumerate(leaves):
        if leaf is not None:
            tensors[f"carried.{i}"] = leaf
    save_tensors(directory / TRAIN_TENSORS, tensors, metadata={"step": str(progress["step"])})
    atomic_write_json(
        directory / TRAIN_JSON,
        {
            "format": FORMAT,
            "param_groups": opt["param_groups"],
            "optim_scalars": scalars,
            "carried_leaves": None if carried_state is None else len(leaves),
            "progress": progress,
            "fingerprint": fingerprint,
        },
    )


def read_training_json(directory: str | Path) -> dict[str, Any]:
    """training_state.json with its fields checked (presence, types, progress consistent with itself)."""
    where = Path(directory) / TRAIN_JSON
    info = load_json(where)
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise AstrosnnError(f"{where}: not an astrosnn training state")
    groups = field(info, "param_groups", list, where)
    if not groups or not all(isinstance(g, dict) for g in groups):
        raise AstrosnnError(f"{where}: key 'param_groups' must be a list of objects")
    for g in groups:
        for key in ("lr", "weight_decay", "eps"):
            field(g, key, float, f"{where} (param_groups)")
        betas = field(g, "betas", list, f"{where} (param_groups)")
        if len(betas) != 2 or not all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in betas):
            raise AstrosnnError(f"{where}: key 'betas' must be a pair of numbers")
        params = field(g, "params", list, f"{where} (param_groups)")
        if not all(isinstance(i, int) and not isinstance(i, bool) for i in params):
            raise AstrosnnError(f"{where}: key 'params' must list integers")
    scalars = field(info, "optim_scalars", dict, where)
    for idx, entry in scalars.items():
        if not idx.isdigit() or not isinstance(entry, dict):
            raise AstrosnnError(f"{where}: key 'optim_scalars' is damaged (entry {idx!r})")
    if info.get("carried_leaves") is not None:
        _count(info, "carried_leaves", where)
    prog = field(info, "progress", dict, where)
    pw = f"{where} (progress)"
    step = _count(prog, "step", pw)
    _count(prog, "tokens", pw)
    for key in ("elapsed_train", "wall_before"):
        if field(prog, key, float, pw) < 0:
            raise AstrosnnError(f"{pw}: key {key!r} must be >= 0")
    if field(prog, "wall_time_s", float, pw, optional=True, default=0.0) < 0:
        raise AstrosnnError(f"{pw}: key 'wall_time_s' must be >= 0")
    losses = field(prog, "train_loss", list, pw)
    if len(losses) != step or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in losses):
        raise AstrosnnError(f"{pw}: key 'train_loss' must list {step} numbers (one per step), got {len(losses)} entries")
    vals = field(prog, "validation", list, pw)
    for v in vals:
        if not isinstance(v, dict):
            raise AstrosnnError(f"{pw}: key 'validation' must list objects")
        for key in ("step", "valid_tokens"):
            _count(v, key, f"{pw} (validation)")
        field(v, "loss", float, f"{pw} (validation)")
    field(info, "fingerprint", dict, where, optional=True)
    return info


def load_training_state(
    directory: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer, batch_size: int
) -> tuple[Any, dict[str, Any]]:
    """Restore optimizer and torch RNG; return (carried recurrent state or None, progress dict).

    A damaged optimizer state is named as such (the file and the fault), never left to show as a divergence.
    """
    directory = Path(directory)
    info = read_training_json(directory)
    tpath = directory / TRAIN_TENSORS
    tensors = load_tensors(tpath)
    progress = info["progress"]
    _, meta = _header(tpath)
    if meta.get("step") != str(progress.get("step")):
        raise AstrosnnError(f"{directory}: training state files disagree on the step (half-written checkpoint?)")
    check_finite({k: v for k, v in tensors.items() if not k.startswith("rng.")}, f"{tpath} (optimizer state)")
    rng = tensors.get("rng.torch")
    if rng is None or rng.dtype != torch.uint8 or rng.shape != torch.get_rng_state().shape:
        raise AstrosnnError(f"{tpath}: the random-number state rng.torch is missing or damaged")
    params = [p for g in optimizer.param_groups for p in g["params"]]
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            parts = name.split(".", 2)
            if len(parts) != 3 or not parts[1].isdigit() or int(parts[1]) >= len(params):
                raise AstrosnnError(f"{tpath}: optimizer state tensor {name} belongs to no parameter of this model")
            idx, key = int(parts[1]), parts[2]
            want = params[idx].shape if key in ("exp_avg", "exp_avg_sq") else None
            if want is not None and value.shape != want:
                raise AstrosnnError(f"{tpath}: optimizer state tensor {name} has shape {tuple(value.shape)}, "
                                    f"its parameter has {tuple(want)}")  # fmt: skip
            if key == "step" and (value.numel() != 1 or float(value) < 0):
                raise AstrosnnError(f"{tpath}: optimizer state tensor {name} is not a step count")
            state.setdefault(idx, {})[key] = value
    for idx, entry in info["optim_scalars"].items():
        state.setdefault(int(idx), {}).update(entry)
    for idx, entry in state.items():
        if "step" in entry and not {"exp_avg", "exp_avg_sq"} <= set(entry):
            raise AstrosnnError(f"{tpath}: optimizer state of parameter {idx} is incomplete")
    groups = info["param_groups"]
    for g in groups:
        g["betas"] = tuple(g["betas"])
    try:
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError, RuntimeError, TypeError, IndexError) as e:
        raise AstrosnnError(f"{directory / TRAIN_JSON}: optimizer state does not fit this model ({e})") from None
    torch.set_rng_state(rng)
    carried = None
    n = info.get("carried_leaves")
    if n is not None:
        template = model.init_state(batch_size)
        want = flatten_state(template)
        if n != len(want):
            raise AstrosnnError(f"{directory / TRAIN_JSON}: carried_leaves is {n}, this model carries {len(want)} tensors")
        leaves = [tensors.get(f"carried.{i}") for i in range(n)]
        for i, (leaf, ref) in enumerate(zip(leaves, want)):
            if (leaf is None) != (ref is None) or (leaf is not None and leaf.shape != ref.shape):
                got = None if leaf is None else tuple(leaf.shape)
                raise AstrosnnError(f"{tpath}: carried state tensor carried.{i} is {got}, the model's is "
                                    f"{None if ref is None else tuple(ref.shape)}")  # fmt: skip
        carried = unflatten_like(template, leaves)
    return carried, progress


# ------------------------------------------------------------------------- the atomic training checkpoint


def _dir_mode() -> int:
    from astrosnn.runinfo import current_umask

    return 0o777 & ~current_umask()


def read_manifest(out: str | Path) -> tuple[Path, dict[str, Any]]:
    """The step folder `OUT/checkpoint/manifest.json` points to, every file's size and sha256 checked."""
    out = Path(out)
    root = out / CHECKPOINT_DIR
    where = root / MANIFEST
    manifest = load_json(where)
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise AstrosnnError(f"{where}: not an astrosnn training-checkpoint manifest")
    if field(manifest, "format_version", int, where) != 1:
        raise AstrosnnError(f"{where}: format_version {manifest['format_version']} is not one this astrosnn reads (1)")
    step = _count(manifest, "step", where)
    name = field(manifest, "folder", str, where)
    if not _STEP_RE.match(name):
        raise AstrosnnError(f"{where}: key 'folder' is not a step folder ({name!r})")
    files = field(manifest, "files", dict, where)
    folder = root / name
    if not folder.is_dir():
        raise AstrosnnError(f"{where}: step folder {name} is missing")
    extras = sorted(set(files) - set(STEP_FILES))
    if not set(STEP_FILES) <= set(files) or not all(_EXTRA_RE.match(f) and ".." not in f for f in extras):
        raise AstrosnnError(f"{where}: key 'files' must list {', '.join(STEP_FILES)} (and only {TOKENIZER_FILE} or "
                            f"{DCP_DIR}/ files besides)")  # fmt: skip
    layout = field(manifest, "layout", str, where, optional=True, default="single")
    if layout not in ("single", "dcp") or (layout == "dcp") != any(f.startswith(DCP_DIR + "/") for f in extras):
        raise AstrosnnError(f"{where}: key 'layout' must be 'single' or 'dcp' (with {DCP_DIR}/ files)")
    for fname in (*STEP_FILES, *extras):
        entry = files[fname]
        fw = f"{where} (files.{fname})"
        if not isinstance(entry, dict):
            raise AstrosnnError(f"{fw}: must be an object")
        digest, size = field(entry, "sha256", str, fw), _count(entry, "bytes", fw)
        path = folder / fname
        if not path.is_file():
            raise AstrosnnError(f"{path}: file not found (the checkpoint of step {step} is incomplete)")
        if path.stat().st_size != size or sha256_file(path) != digest:
            raise AstrosnnError(f"{path}: content differs from the checksum in {MANIFEST} (the file was damaged)")
    return folder, manifest


def save_training_checkpoint(
    out: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    carried_state: Any,
    progress: dict[str, Any],
    *,
    vocab: tuple[str, ...] | list[str],
    level: str,
    extra: dict[str, Any] | None = None,
    fingerprint: dict[str, Any] | None = None,
    tokenizer: bytes | None = None,
) -> Path:
    """Write a complete step folder, switch `manifest.json` to it (one rename), prune the older ones."""
    step = int(progress["step"])
    tmp = begin_step_folder(out, step)
    try:
        save_checkpoint(tmp, model, vocab=vocab, level=level, step=step, extra=extra, tokenizer=tokenizer)
        save_training_state(tmp, optimizer, carried_state, progress, fingerprint)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return commit_step_folder(out, tmp, step)


def begin_step_folder(out: str | Path, step: int) -> Path:
    """A fresh hidden folder under OUT/checkpoint/ to write step `step` into (see :func:`commit_step_folder`)."""
    root = Path(out) / CHECKPOINT_DIR
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".tmp-step-{step:08d}-"))
    os.chmod(tmp, _dir_mode())
    return tmp


def commit_step_folder(out: str | Path, tmp: Path, step: int, layout: str = "single") -> Path:
    """Flush the complete folder `tmp`, rename it to its step name, switch the manifest to it (every file's
    sha256 and size; `layout` "dcp" when it holds a torch.distributed.checkpoint), prune the older ones."""
    root = Path(out) / CHECKPOINT_DIR
    try:
        for sub in [p for p in tmp.rglob("*") if p.is_dir()]:
            fsync_dir(sub)
        fsync_dir(tmp)
        current = _current_name(root)
        name, k = f"step-{step:08d}", 1
        while name == current:
            name, k = f"step-{step:08d}-{k}", k + 1
        if (root / name).exists():
            shutil.rmtree(root / name)
        os.rename(tmp, root / name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_dir(root)
    folder = root / name
    names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    files = {f: {"sha256": sha256_file(folder / f), "bytes": (folder / f).stat().st_size} for f in names}
    manifest = {"format": MANIFEST_FORMAT, "format_version": 1, "step": step, "folder": name, "files": files}
    if layout != "single":
        manifest["layout"] = layout
    atomic_write_json(root / MANIFEST, manifest)
    fsync_dir(root)
    for entry in root.iterdir():
        if entry.name != name and (_STEP_RE.match(entry.name) or entry.name.startswith(".tmp-step-")):
            shutil.rmtree(entry, ignore_errors=True)
    return folder


def _current_name(root: Path) -> str | None:
    try:
        manifest = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
        return manifest.get("folder") if isinstance(manifest, dict) else None
    except (OSError, ValueError):
        return None


def export_model(folder: str | Path, out: str | Path) -> None:
    """Copy a step folder's model (weights, then config with their checksum) to the model folder `out`."""
    folder, out = Path(folder), Path(out)
    atomic_write_bytes(out / WEIGHTS, (folder / WEIGHTS).read_bytes())
    if (folder / TOKENIZER_FILE).is_file():
        atomic_write_bytes(out / TOKENIZER_FILE, (folder / TOKENIZER_FILE).read_bytes())
    else:
        (out / TOKENIZER_FILE).unlink(missing_ok=True)
    atomic_write_bytes(out / CONFIG, (folder / CONFIG).read_bytes())
