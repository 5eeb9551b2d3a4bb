"""Seeds, version records, atomic file writes, content hashes and option fingerprints shared by every job."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import random
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python, numpy and torch; return a numpy Generator for explicit use."""
    if seed < 0:
        from astrosnn.errors import AstrosnnError

        raise AstrosnnError(f"seed must be >= 0, got {seed}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def versions() -> dict[str, str]:
    """Versions and machine facts recorded with every result."""
    import numba

    from astrosnn import __version__

    return {
        "astrosnn": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "numba": numba.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": str(os.cpu_count()),
        "torch_threads": str(torch.get_num_threads()),
        **_source_commit(),
    }


@functools.cache
def _source_commit() -> dict[str, str]:
    """``{"git_commit": sha[+dirty]}`` when astrosnn runs from a git checkout (an editable install), else {}."""
    import subprocess

    here = Path(__file__).resolve().parent
    try:
        top, sha = subprocess.run(["git", "-C", str(here), "rev-parse", "--show-toplevel", "HEAD"],
                                  capture_output=True, text=True, timeout=10, check=True).stdout.split()
        if Path(top).resolve() / "src" / "astrosnn" != here:  # e.g. an install inside some other repository
            return {}
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no", "."],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"git_commit": sha + ("+dirty" if dirty else "")} if sha else {}


_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process umask (read by setting it and putting it back, under a lock)."""
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode a plain `open(path, "w")` gives a new file: 0o666 less the umask."""
    return 0o666 & ~current_umask()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, then rename: readers never see half a file.

    The file gets the mode of an ordinary new file (0o666 less the umask), not mkstemp's 0o600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), file_mode())
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Save tensors as safetensors, atomically (no pickle anywhere)."""
    from safetensors.torch import save

    payload = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    atomic_write_bytes(path, save(payload, metadata=metadata))


def load_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a safetensors file with a clear error when it is missing or corrupt."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from astrosnn.errors import AstrosnnError

    path = Path(path)
    if not path.is_file():
        raise AstrosnnError(f"{path}: file not found")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError, OverflowError, MemoryError) as e:
        raise AstrosnnError(f"{path}: not a valid safetensors file ({e})") from None


def load_json(path: str | Path) -> Any:
    from astrosnn.errors import AstrosnnError

    path = Path(path)
    if not path.is_file():
        raise AstrosnnError(f"{path}: file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise AstrosnnError(f"{path}: not valid JSON ({e})") from None
    except OSError as e:
        raise AstrosnnError(f"{path}: cannot be read ({e.strerror or e})") from None
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:  # JSONDecodeError, over-long integers
        raise AstrosnnError(f"{path}: not valid JSON ({e})") from None


def fsync_dir(path: str | Path) -> None:
    """Flush a folder's entries (new and renamed files) to disk; a no-op where folders cannot be opened."""
    try:
        fd = os.open(str(path), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def json_sha256(obj: Any) -> str:
    """Hex sha256 of a JSON value's canonical text (sorted keys, no spaces): layout changes keep it."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str, allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()


def differences(saved: Any, given: Any, prefix: str = "") -> list[str]:
    """Dotted keys where two JSON-like values differ (nested dicts compared key by key)."""
    if isinstance(saved, dict) and isinstance(given, dict):
        out: list[str] = []
        for key in sorted(set(saved) | set(given), key=str):
            out += differences(saved.get(key), given.get(key), f"{prefix}{key}.")
        return out
    return [] if saved == given else [prefix.rstrip(".")]


def refuse_changed_options(folder: str | Path, saved: Any, given: Any, how: str = "use the same options") -> None:
    """Raise an AstrosnnError listing the keys where a run's saved fingerprint and the given one differ.

    Fingerprints are JSON-like dicts (compared after a JSON round trip, as they read back from a file).
    """
    from astrosnn.errors import AstrosnnError

    def norm(v: Any) -> Any:
        return json.loads(json.dumps(v, default=str))

    diff = differences(norm(saved), norm(given))
    if diff:
        shown = ", ".join(diff[:8]) + (" ..." if len(diff) > 8 else "")
        raise AstrosnnError(f"cannot resume: the checkpoint in {folder} is of a run with other settings ({shown}); "
                            f"{how}, or delete that folder to start over")
