"""Language-model checkpoints: safetensors for tensors, JSON for everything else; never pickle.

A checkpoint folder holds
- `config.json`: format tag, model kind and config, vocabulary, training config, versions, step (the model
  config is nested, e.g. AstroSNN's AM-SU fields under `amsu`; the flat form of older checkpoints loads too);
- `model.safetensors`: the weights (metadata repeats the kind and step);
- `training_state.safetensors` + `training_state.json` (optional, for `--resume`): optimizer moments,
  torch RNG state, the recurrent state carried between batches, and the progress so far.
Every file is written atomically; the step is stored in each so a half-written checkpoint is detected.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from torch import nn

from astrosnn.errors import AstrosnnError
from astrosnn.lm.registry import count_parameters, model_from_config_dict, model_kinds
from astrosnn.lm.state import flatten_state, unflatten_like
from astrosnn.runinfo import atomic_write_json, load_json, load_tensors, save_tensors

FORMAT = "astrosnn-lm-checkpoint"
FORMAT_VERSION = 1
CONFIG = "config.json"
WEIGHTS = "model.safetensors"
TRAIN_TENSORS = "training_state.safetensors"
TRAIN_JSON = "training_state.json"


@dataclass
class LoadedCheckpoint:
    model: nn.Module
    kind: str
    vocab: tuple[str, ...]
    level: str  # "char" | "word"
    config: dict[str, Any]  # the whole config.json
    step: int


def save_checkpoint(
    directory: str | Path,
    model: nn.Module,
    *,
    vocab: tuple[str, ...] | list[str],
    level: str,
    step: int = 0,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write `model.safetensors` then `config.json` into `directory` (created if needed)."""
    directory = Path(directory)
    # clone: tied weights share storage, which safetensors refuses to write twice
    weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
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
    }
    atomic_write_json(directory / CONFIG, config)


def read_config(directory: str | Path) -> dict[str, Any]:
    directory = Path(directory)
    if not directory.exists():
        raise AstrosnnError(f"checkpoint {directory}: no such folder")
    if not directory.is_dir():
        raise AstrosnnError(f"checkpoint {directory}: not a folder (pass the run folder holding {CONFIG})")
    config = load_json(directory / CONFIG)
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise AstrosnnError(f"{directory / CONFIG}: not an astrosnn language-model checkpoint")
    kind = config.get("kind")
    if kind not in model_kinds():
        raise AstrosnnError(f"{directory / CONFIG}: unknown model kind {kind!r}")
    if not isinstance(config.get("vocab"), list) or config.get("level") not in ("char", "word"):
        raise AstrosnnError(f"{directory / CONFIG}: vocabulary or level missing")
    return config


def load_checkpoint(directory: str | Path, kind: str | None = None) -> LoadedCheckpoint:
    """Rebuild the model from `config.json` and load its weights; any mismatch is an AstrosnnError.

    `kind`, when given, must match the checkpoint's model kind.
    """
    directory = Path(directory)
    config = read_config(directory)
    if kind is not None and config["kind"] != kind:
        raise AstrosnnError(f"checkpoint {directory} holds a {config['kind']} model, not {kind}")
    model_config = config.get("model_config")
    if not isinstance(model_config, dict):
        raise AstrosnnError(f"{directory / CONFIG}: model_config missing")
    model = model_from_config_dict(config["kind"], model_config)
    weights = load_tensors(directory / WEIGHTS)
    load_weights(model, weights, directory / WEIGHTS)
    with safe_open(str(directory / WEIGHTS), framework="pt") as f:
        meta = f.metadata() or {}
    if meta.get("kind") != config["kind"]:
        raise AstrosnnError(f"{directory / WEIGHTS}: weights of a {meta.get('kind')} model, config says {config['kind']}")
    if meta.get("step") != str(config.get("step")):
        raise AstrosnnError(f"{directory}: weights (step {meta.get('step')}) and config (step {config.get('step')}) disagree")
    model.eval()
    return LoadedCheckpoint(model, config["kind"], tuple(config["vocab"]), config["level"], config, int(config["step"]))


def load_weights(model: nn.Module, weights: dict[str, torch.Tensor], where: Path | str) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}")
        if unexpected:
            parts.append(f"unexpected {', '.join(unexpected[:3])}{' ...' if len(unexpected) > 3 else ''}")
        raise AstrosnnError(f"{where}: weights do not fit a {model.kind} model ({'; '.join(parts)})")
    for name, tensor in expected.items():
        if weights[name].shape != tensor.shape:
            raise AstrosnnError(
                f"{where}: {name} has shape {tuple(weights[name].shape)}, the model expects {tuple(tensor.shape)}"
            )
    model.load_state_dict(weights, strict=True)


# ----------------------------------------------------------------------------------- training state


def save_training_state(
    directory: str | Path,
    optimizer: torch.optim.Optimizer,
    carried_state: Any,
    progress: dict[str, Any],
) -> None:
    """Optimizer moments, torch RNG, carried recurrent state and progress, for an exact resume."""
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
        },
    )


def load_training_state(
    directory: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer, batch_size: int
) -> tuple[Any, dict[str, Any]]:
    """Restore optimizer and torch RNG; return (carried recurrent state or None, progress dict)."""
    directory = Path(directory)
    info = load_json(directory / TRAIN_JSON)
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise AstrosnnError(f"{directory / TRAIN_JSON}: not an astrosnn training state")
    tensors = load_tensors(directory / TRAIN_TENSORS)
    progress = info["progress"]
    with safe_open(str(directory / TRAIN_TENSORS), framework="pt") as f:
        meta = f.metadata() or {}
    if meta.get("step") != str(progress.get("step")):
        raise AstrosnnError(f"{directory}: training state files disagree on the step (half-written checkpoint?)")
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, idx, key = name.split(".", 2)
            state.setdefault(int(idx), {})[key] = value
    for idx, entry in info.get("optim_scalars", {}).items():
        state.setdefault(int(idx), {}).update(entry)
    groups = info["param_groups"]
    for g in groups:
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    try:
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError, RuntimeError) as e:
        raise AstrosnnError(f"{directory / TRAIN_JSON}: optimizer state does not fit this model ({e})") from None
    torch.set_rng_state(tensors["rng.torch"])
    carried = None
    n = info.get("carried_leaves")
    if n is not None:
        template = model.init_state(batch_size)
        leaves = [tensors.get(f"carried.{i}") for i in range(n)]
        carried = unflatten_like(template, leaves)
    return carried, progress

