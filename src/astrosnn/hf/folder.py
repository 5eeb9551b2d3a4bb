"""An exported Hugging Face folder checked before anything is loaded: config.json (valid JSON, model_type
"astrosnn", a native config), model.safetensors (readable, complete, the names and shapes the config's
model has). Every fault is a one-line AstrosnnError naming the file.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from astrosnn.errors import AstrosnnError
from astrosnn.hf.configuration import MODEL_TYPE, AstroSNNHFConfig, native_model

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
PREFIX = "model."
TIED_HEAD, TIED_EMBED = "model.head.weight", "model.embed.weight"  # a tied head is saved once, as the embedding


def tied(config: AstroSNNHFConfig) -> bool:
    return bool(config.astrosnn_config.get("tie_embeddings", False))


def read_hf_config(directory: str | Path) -> AstroSNNHFConfig:
    """The config of an exported folder; a missing, corrupt or foreign config.json is an AstrosnnError."""
    directory = Path(directory)
    if not directory.is_dir():
        raise AstrosnnError(f"{directory}: no such folder")
    path = directory / CONFIG
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AstrosnnError(f"{path}: missing (not a model folder)") from None
    except (OSError, ValueError) as e:
        raise AstrosnnError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(raw, dict):
        raise AstrosnnError(f"{path}: not a JSON object")
    if raw.get("model_type") != MODEL_TYPE:
        raise AstrosnnError(f"{path}: model_type is {raw.get('model_type')!r}, not {MODEL_TYPE!r}")
    if not isinstance(raw.get("astrosnn_config"), dict):
        raise AstrosnnError(f"{path}: astrosnn_config (the native model config) is missing")
    return AstroSNNHFConfig(**{k: v for k, v in raw.items() if k not in ("model_type", "transformers_version")})


def check_hf_folder(directory: str | Path) -> AstroSNNHFConfig:
    """Validate an exported folder (config, weights file, weight names and shapes) without loading it into a
    model; any fault is a one-line AstrosnnError."""
    config = read_hf_config(directory)
    with torch.device("meta"):
        model = native_model(config)
    path = Path(directory) / WEIGHTS
    shapes = _safetensors_shapes(path)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    if tied(config):
        expected.pop(TIED_HEAD[len(PREFIX):], None)
        shapes.pop(TIED_HEAD[len(PREFIX):], None)
    missing = sorted(set(expected) - set(shapes))
    unexpected = sorted(set(shapes) - set(expected))
    if missing or unexpected:
        parts = [f"{what} {', '.join(names[:3])}{' ...' if len(names) > 3 else ''}"
                 for what, names in (("missing", missing), ("unexpected", unexpected)) if names]  # fmt: skip
        raise AstrosnnError(f"{path}: weights do not fit a {config.astrosnn_kind} model ({'; '.join(parts)})")
    for name, shape in expected.items():
        if shapes[name] != shape:
            raise AstrosnnError(f"{path}: {PREFIX}{name} has shape {shapes[name]}, the model expects {shape}")
    return config


def _safetensors_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor names (without the prefix) and shapes from a safetensors header; a bad file is an AstrosnnError."""
    from safetensors import safe_open

    if not path.is_file():
        raise AstrosnnError(f"{path}: missing")
    try:
        with safe_open(str(path), framework="pt") as f:
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as e:  # safetensors raises its own error types
        raise AstrosnnError(f"{path}: not a readable safetensors file ({str(e).splitlines()[0]})") from None
    size = path.stat().st_size
    with path.open("rb") as fh:
        header = int.from_bytes(fh.read(8), "little")
    if header + 8 > size:
        raise AstrosnnError(f"{path}: truncated")
    return {k[len(PREFIX):] if k.startswith(PREFIX) else k: v for k, v in shapes.items()}


