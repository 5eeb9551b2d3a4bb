"""N-MNIST from Orchard's `.bin` event files in the `Train|Test/<label>/<NNNNN>.bin` layout."""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from astrosnn.data import registry
from astrosnn.data.sources import list_dir, path_kind, read_file_bytes, require_files
from astrosnn.data.verify import MANIFEST, OPT_OUT, read_manifest, verification_on
from astrosnn.errors import AstrosnnError, ChecksumError, DataAccessError, DataError, plain

log = logging.getLogger(__name__)

EVENT_DTYPE = np.dtype([("x", np.int16), ("y", np.int16), ("p", np.int8), ("t", np.int64)])
SENSOR = 34
OVERFLOW_Y = 240  # Orchard's timestamp-overflow marker event (never seen in N-MNIST, handled as his reader does)
OVERFLOW_US = 1 << 13
TRAIN_SIZE, VALIDATION_START = 60_000, 50_001  # validation = training files 50001..60000 (1-based)
SPLITS = ("train", "validation", "test")
# Plausibility: N-MNIST recordings are three ~100 ms saccades; the 1,100 shared files end at 296.8-336.0 ms and
# start within 26 ms. A recording ending after MAX_END_US is refused (a corrupt timestamp or another dataset).
MAX_END_US = 1_000_000
_NAME = re.compile(r"^(\d+)\.bin$")
_logged_notes: set[str] = set()


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
    """(1-based index, label, path) of every `<label>/<NNNNN>.bin` under folder, sorted by index.

    An unreadable folder is an error (never skipped: that would drop a class silently), as is a `.bin`
    that is a folder or a `.bin` outside the `<label 0-9>/<NNNNN>.bin` layout."""
    found = []
    for sub in list_dir(folder):
        sub_path = folder / sub.name
        if path_kind(sub_path) != "dir":
            continue
        for entry in list_dir(sub_path):
            if not entry.name.endswith(".bin"):
                continue
            path = sub_path / entry.name
            m = _NAME.match(entry.name)
            if not (sub.name.isdigit() and len(sub.name) == 1) or m is None:
                raise DataError(f"{path}: not in the N-MNIST layout <label 0-9>/<NNNNN>.bin")
            if path_kind(path) != "file":
                raise DataAccessError(f"{path}: is not a regular file, expected an N-MNIST event file")
            found.append((int(m.group(1)), int(sub.name), path))
    found.sort(key=lambda r: r[0])
    for a, b in zip(found, found[1:]):
        if a[0] == b[0]:
            raise DataError(f"{a[2]} and {b[2]}: two files with sample index {a[0]}")
    return found


def md5_mismatch(path: Path, expected: str, actual: str, size: int) -> ChecksumError:
    return ChecksumError(
        f"{path}: md5 checksum mismatch (expected {expected} from {MANIFEST}, got {actual}; {size:,} bytes): "
        f"the event file is damaged or was changed; fetch it again, or {OPT_OUT}"
    )


def decode_files(
    paths: Sequence[Path], md5s: Sequence[str | None] | None = None, plausible: bool = True
) -> list[np.ndarray]:
    """Decode many `.bin` files at once (5 bytes/event: x, y, p = bit 7 of byte 2, 23-bit µs timestamp).

    Always checked: non-empty, whole 5-byte events, coordinates on the 34x34 sensor. With `md5s` (one per
    path, None = unknown) each file must match its md5. With `plausible`: timestamps never decrease and the
    recording ends by MAX_END_US. Every fault is a DataError naming the file."""
    chunks = []
    for i, path in enumerate(paths):
        raw = read_file_bytes(path)
        expected = md5s[i] if md5s is not None else None
        if expected is not None and hashlib.md5(raw).hexdigest() != expected:
            raise md5_mismatch(path, expected, hashlib.md5(raw).hexdigest(), len(raw))
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
    if overflow.any() and (counts == 0).any():
        raise DataError(f"{paths[int(np.argmax(counts == 0))]}: no events (only timestamp-overflow markers)")
    bad = (x >= SENSOR) | (y >= SENSOR)
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(
            f"{paths[int(sample[i])]}: event coordinate x={int(x[i])}, y={int(y[i])} outside the 34x34 sensor "
            f"(0..33), event {_event_number(i, sample, counts)} of the file"
        )
    if plausible and len(t):
        _check_timestamps(paths, t, sample, counts)
    events = np.empty(len(x), dtype=EVENT_DTYPE)
    events["x"], events["y"], events["p"], events["t"] = x, y, (b2 >> 7).astype(np.int8), t
    return np.split(events, np.cumsum(counts)[:-1])


def _event_number(i: int, sample: np.ndarray, counts: np.ndarray) -> int:
    """1-based number of event i within its own file (after dropping overflow markers)."""
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return int(i - starts[sample[i]]) + 1


def _check_timestamps(paths: Sequence[Path], t: np.ndarray, sample: np.ndarray, counts: np.ndarray) -> None:
    back = np.flatnonzero((np.diff(t) < 0) & (sample[1:] == sample[:-1]))
    if back.size:
        i = int(back[0]) + 1
        raise DataError(
            f"{paths[int(sample[i])]}: timestamps run backwards at event {_event_number(i, sample, counts)} "
            f"({int(t[i - 1])} us, then {int(t[i])} us); the event file is corrupt ({OPT_OUT})"
        )
    ends = np.cumsum(counts)[counts > 0] - 1
    late = ends[t[ends] > MAX_END_US]
    if late.size:
        i = int(late[0])
        raise DataError(
            f"{paths[int(sample[i])]}: recording ends at {int(t[i]) / 1e6:.3f} s, implausible for N-MNIST "
            f"(about 0.3 s, at most {MAX_END_US / 1e6:g} s); the event file is corrupt "
            f"({OPT_OUT})"
        )


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
    if n_val == 0:
        note = (
            f"only {len(files)} training file(s) present and none in the validation range 50001-60000: "
            f"too few for a validation split; validation is empty, train = all {len(files)}"
        )
        return ([] if split == "validation" else files), note
    note = (
        f"only {len(files)} training files present and none in the validation range 50001-60000: "
        f"validation = the last {n_val} present training files (index {files[cut][0]}-{files[-1][0]}), "
        f"train = the first {cut}"
    )
    return (files[cut:] if split == "validation" else files[:cut]), note


def manifest_md5s(
    folder: Path, root: Path, files: Sequence[tuple[int, int, Path]], manifest: Mapping[str, str]
) -> list[str]:
    """The manifest md5 of each file under `root`; a file the manifest does not list, or a file it lists
    under `root` that is absent (a dropped sample), is a ChecksumError naming the file."""
    rel = [p.relative_to(folder).as_posix() for _, _, p in files]
    unlisted = [r for r in rel if r not in manifest]
    if unlisted:
        raise ChecksumError(
            f"{folder / unlisted[0]}: not listed in {folder / MANIFEST} ({len(unlisted)} such file(s)); the folder "
            f"does not match its manifest: remove the file or the manifest, or {OPT_OUT}"
        )
    prefix = root.relative_to(folder).as_posix() + "/"
    present = set(rel)
    absent = sorted(r for r in manifest if r.startswith(prefix) and r not in present)
    if absent:
        raise ChecksumError(
            f"{folder / absent[0]}: listed in {folder / MANIFEST} but missing ({len(absent)} such file(s)); "
            f"put it back, or {OPT_OUT}"
        )
    return [manifest[r] for r in rel]


def _log_once(note: str) -> None:
    """One clean line on stderr (a logging record, no source line), once per process and note."""
    if note and note not in _logged_notes:
        _logged_notes.add(note)
        log.warning("astrosnn: note: %s", note)


def load_nmnist(
    split: str,
    data_dir: str | Path | None = None,
    limit: int | None = None,
    download: bool = True,
    verify: bool = True,
) -> EventSet:
    """N-MNIST events for train / validation / test (by file index, as for MNIST); whatever subset is present.

    Every file read is checked (whole events, coordinates on the sensor, non-decreasing timestamps, a
    recording of at most MAX_END_US). When the folder holds a MANIFEST.tsv (columns placed_path, md5) every
    file of the split must be listed there and match its md5, and no listed file may be missing.
    `verify=False` or $ASTROSNN_SKIP_CHECKSUMS=1 skips the manifest and the timestamp checks (modified data)."""
    if split not in SPLITS:
        raise AstrosnnError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
    if limit is not None and (not isinstance(limit, (int, np.integer)) or limit < 0):
        raise AstrosnnError(f"limit must be a non-negative integer, got {plain(limit)}")
    archive = "Test.zip" if split == "test" else "Train.zip"
    folder = require_files(registry.NMNIST, data_dir, download, names=(archive,))
    root = folder / registry.NMNIST.file(archive).unpacks_to
    check = verification_on(verify)
    files = list_files(root)
    manifest = read_manifest(folder) if check else None
    md5_of = {}
    if manifest is not None:
        md5_of = dict(zip((p for _, _, p in files), manifest_md5s(folder, root, files, manifest)))
    if split == "test":
        chosen, note = files, ""
    else:
        chosen, note = select_split(split, files)
        _log_once(note)
    if limit is not None:
        chosen = chosen[:limit]
    paths = [p for _, _, p in chosen]
    md5s = [md5_of[p] for p in paths] if manifest is not None else None
    return EventSet(
        name="nmnist",
        split=split,
        events=decode_files(paths, md5s, plausible=check) if chosen else [],
        labels=np.array([label for _, label, _ in chosen], dtype=np.int64),
        files=tuple(p.relative_to(folder).as_posix() for _, _, p in chosen),
        source=str(folder),
        note=note,
    )
