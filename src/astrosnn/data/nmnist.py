"""N-MNIST from Orchard's `.bin` event files in the `Train|Test/<label>/<NNNNN>.bin` layout."""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from astrosnn.data import registry
from astrosnn.data.sources import require_files
from astrosnn.errors import AstrosnnError, DataError

EVENT_DTYPE = np.dtype([("x", np.int16), ("y", np.int16), ("p", np.int8), ("t", np.int64)])
SENSOR = 34
OVERFLOW_Y = 240  # Orchard's timestamp-overflow marker event (never seen in N-MNIST, handled as his reader does)
OVERFLOW_US = 1 << 13
TRAIN_SIZE, VALIDATION_START = 60_000, 50_001  # validation = training files 50001..60000 (1-based)
SPLITS = ("train", "validation", "test")
_NAME = re.compile(r"^(\d+)\.bin$")


@dataclass(frozen=True)
class EventSet:
    name: str
    split: str
    events: list[np.ndarray]  # structured arrays with fields x, y (int16), p (int8, 1 = ON), t (int64, µs)
    labels: np.ndarray  # int64 (N,)
    files: tuple[str, ...]  # relative to source
    source: str
    note: str


def list_files(folder: Path) -> list[tuple[int, int, Path]]:
    """(1-based index, label, path) of every `<label>/<NNNNN>.bin` under folder, sorted by index."""
    found = []
    for path in folder.glob("*/*.bin"):
        label_dir, m = path.parent.name, _NAME.match(path.name)
        if not (label_dir.isdigit() and len(label_dir) == 1) or m is None:
            raise DataError(f"{path}: not in the N-MNIST layout <label 0-9>/<NNNNN>.bin")
        found.append((int(m.group(1)), int(label_dir), path))
    found.sort(key=lambda r: r[0])
    for a, b in zip(found, found[1:]):
        if a[0] == b[0]:
            raise DataError(f"{a[2]} and {b[2]}: two files with sample index {a[0]}")
    return found


def decode_files(paths: list[Path]) -> list[np.ndarray]:
    """Decode many `.bin` files at once (5 bytes/event: x, y, p = bit 7 of byte 2, 23-bit µs timestamp)."""
    chunks = []
    for path in paths:
        raw = path.read_bytes()
        if not raw:
            raise DataError(f"{path}: empty event file (no events)")
        if len(raw) % 5:
            raise DataError(f"{path}: length {len(raw)} bytes is not a multiple of 5 (truncated event file?)")
        chunks.append(raw)
    counts = np.array([len(c) // 5 for c in chunks], dtype=np.int64)
    rows = np.frombuffer(b"".join(chunks), dtype=np.uint8).reshape(-1, 5)
    sample = np.repeat(np.arange(len(paths)), counts)
    x, y = rows[:, 0].astype(np.int16), rows[:, 1].astype(np.int16)
    b2 = rows[:, 2].astype(np.int64)
    t = ((b2 & 0x7F) << 16) | (rows[:, 3].astype(np.int64) << 8) | rows[:, 4]
    overflow = y == OVERFLOW_Y
    if overflow.any():  # each marker adds 2^13 µs to the rest of its own file
        t = t + OVERFLOW_US * _per_file_cumsum(overflow, sample, counts)
        keep = ~overflow
        x, y, b2, t, sample = x[keep], y[keep], b2[keep], t[keep], sample[keep]
        counts = np.bincount(sample, minlength=len(paths))
    bad = (x >= SENSOR) | (y >= SENSOR)
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(
            f"{paths[sample[i]]}: event coordinate x={x[i]}, y={y[i]} outside the 34x34 sensor (0..33)"
        )
    events = np.empty(len(x), dtype=EVENT_DTYPE)
    events["x"], events["y"], events["p"], events["t"] = x, y, (b2 >> 7).astype(np.int8), t
    return np.split(events, np.cumsum(counts)[:-1])


def _per_file_cumsum(flags: np.ndarray, sample: np.ndarray, counts: np.ndarray) -> np.ndarray:
    total = np.cumsum(flags)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    before = np.where(starts > 0, total[np.maximum(starts - 1, 0)], 0)
    return total - before[sample]


def select_split(split: str, files: list[tuple[int, int, Path]]) -> tuple[list[tuple[int, int, Path]], str]:
    """Train = indices 1..50000, validation = 50001..60000; when that range is empty (a subset), the last
    1/6 of the present training files become validation and the rest train (said in the note)."""
    official_val = [f for f in files if VALIDATION_START <= f[0] <= TRAIN_SIZE]
    if official_val or not files:
        chosen = official_val if split == "validation" else [f for f in files if f[0] < VALIDATION_START]
        return chosen, ""
    n_val = round(len(files) / 6)
    cut = len(files) - n_val
    note = (
        f"only {len(files)} training files present and none in the validation range 50001-60000: "
        f"validation = the last {n_val} present training files (index {files[cut][0]}-{files[-1][0]}), "
        f"train = the first {cut}"
    )
    warnings.warn(note, stacklevel=3)
    return (files[cut:] if split == "validation" else files[:cut]), note


def load_nmnist(
    split: str,
    data_dir: str | Path | None = None,
    limit: int | None = None,
    download: bool = True,
) -> EventSet:
    """N-MNIST events for train / validation / test (by file index, as for MNIST); whatever subset is present."""
    if split not in SPLITS:
        raise AstrosnnError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
    if limit is not None and (not isinstance(limit, (int, np.integer)) or limit < 0):
        raise AstrosnnError(f"limit must be a non-negative integer, got {limit!r}")
    archive = "Test.zip" if split == "test" else "Train.zip"
    folder = require_files(registry.NMNIST, data_dir, download, names=(archive,))
    root = folder / registry.NMNIST.file(archive).unpacks_to
    if split == "test":
        chosen, note = list_files(root), ""
    else:
        chosen, note = select_split(split, list_files(root))
    if limit is not None:
        chosen = chosen[:limit]
    return EventSet(
        name="nmnist",
        split=split,
        events=decode_files([p for _, _, p in chosen]) if chosen else [],
        labels=np.array([label for _, label, _ in chosen], dtype=np.int64),
        files=tuple(p.relative_to(folder).as_posix() for _, _, p in chosen),
        source=str(folder),
        note=note,
    )
