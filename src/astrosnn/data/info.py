"""A report on every dataset: where it was found (or what to put where), its sizes, its checksums."""

from __future__ import annotations

import csv
import hashlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from astrosnn.data import registry
from astrosnn.data.registry import DatasetFiles
from astrosnn.data.sources import is_present, resolve_data_dir
from astrosnn.errors import DataError

DATASET_ORDER = ("digits", "mnist", "fashion-mnist", "nmnist", "ptb", "tinyshakespeare", "default")


@dataclass(frozen=True)
class DatasetReport:
    name: str
    status: str  # "ok" | "missing" | "partial" | "error"
    location: str  # where it was found, or what to put where
    sizes: str = ""
    checksums: str = ""
    details: dict = field(default_factory=dict)


def file_checksum(path: Path, known_hash: str) -> str:
    """'verified', 'MISMATCH' or 'missing' for one file against an 'alg:hex' known hash."""
    if not path.is_file():
        return "missing"
    alg, expected = known_hash.split(":", 1)
    h = hashlib.new(alg)
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return "verified" if h.hexdigest() == expected else "MISMATCH"


def checksum_summary(spec: DatasetFiles, folder: Path, names: tuple[str, ...] | None = None) -> tuple[str, dict]:
    files = spec.files if names is None else tuple(spec.file(n) for n in names)
    per_file = {f.name: file_checksum(folder / f.name, f.known_hash) for f in files}
    alg = files[0].known_hash.split(":")[0]
    n_ok = sum(v == "verified" for v in per_file.values())
    if all(v == "missing" for v in per_file.values()):
        return "missing", per_file
    bad = [f"{k} {v}" for k, v in per_file.items() if v != "verified"]
    text = f"{n_ok}/{len(per_file)} {alg} verified" + (f" ({'; '.join(bad)})" if bad else "")
    return text, per_file


def _missing_hint(spec: DatasetFiles, folder: Path, names: list[str]) -> str:
    return f"missing: put {', '.join(names)} (from {spec.origin}) in {folder}"


def report_digits() -> DatasetReport:
    import sklearn

    from astrosnn.data.images import DIGITS_SPLITS

    sizes = ", ".join(f"{s} {b - a}" for s, (a, b) in DIGITS_SPLITS.items())
    return DatasetReport(
        "digits", "ok", f"bundled with scikit-learn {sklearn.__version__}",
        f"{sizes}; 8x8 uint8 images; 10 classes", "n/a (embedded)",
    )


def report_idx(spec: DatasetFiles, data_dir: Path) -> DatasetReport:
    from astrosnn.data.images import (
        DIGIT_CLASSES,
        FASHION_CLASSES,
        IDX_TEST_SIZE,
        IDX_TRAIN_SIZE,
        IDX_VALIDATION_SIZE,
        read_idx_pair,
    )

    folder = data_dir / spec.folder
    missing = [f.name for f in spec.files if not is_present(f, folder)]
    checks, per_file = checksum_summary(spec, folder)
    if missing:
        return DatasetReport(spec.key, "missing", _missing_hint(spec, folder, missing), "", checks, per_file)
    try:
        train, _ = read_idx_pair(folder / registry.IDX_NAMES[0], folder / registry.IDX_NAMES[1], IDX_TRAIN_SIZE)
        test, test_labels = read_idx_pair(folder / registry.IDX_NAMES[2], folder / registry.IDX_NAMES[3], IDX_TEST_SIZE)
    except DataError as e:
        return DatasetReport(spec.key, "error", str(e), "", checks, per_file)
    classes = DIGIT_CLASSES if spec.key == "mnist" else FASHION_CLASSES
    sizes = (
        f"train {len(train) - IDX_VALIDATION_SIZE}, validation {IDX_VALIDATION_SIZE}, test {len(test)}; "
        f"{train.shape[1]}x{train.shape[2]} uint8 images; {len(classes)} classes ({', '.join(classes)})"
    )
    per_file["test_label_counts"] = np.bincount(test_labels, minlength=10).tolist()
    return DatasetReport(spec.key, "ok", str(folder), sizes, checks, per_file)


def _manifest_md5(folder: Path) -> dict[str, str]:
    manifest = folder / "MANIFEST.tsv"
    if not manifest.is_file():
        return {}
    with manifest.open(newline="") as f:
        return {row["placed_path"]: row["md5"] for row in csv.DictReader(f, delimiter="\t") if "md5" in row}


def report_nmnist(data_dir: Path) -> DatasetReport:
    from astrosnn.data.nmnist import decode_files, list_files, select_split

    spec = registry.NMNIST
    folder = data_dir / spec.folder
    present = {f.unpacks_to: is_present(f, folder) for f in spec.files}
    if not any(present.values()):
        hint = f"missing: put Train/<label>/<NNNNN>.bin and Test/<label>/<NNNNN>.bin (from {spec.origin}) in {folder}"
        return DatasetReport("nmnist", "missing", hint, "", "n/a")
    try:
        train = list_files(folder / "Train") if present["Train"] else []
        test = list_files(folder / "Test") if present["Test"] else []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            (tr, note), (va, _) = select_split("train", train), select_split("validation", train)
        events = decode_files([p for _, _, p in train + test])
    except DataError as e:
        return DatasetReport("nmnist", "error", str(e), "", "n/a")
    n_events = np.array([len(e) for e in events])
    t_end = np.array([int(e["t"].max()) if len(e) else 0 for e in events])
    sizes = (
        f"train {len(tr)}, validation {len(va)}, test {len(test)} files (of 60000/10000); "
        f"{n_events.sum():,} events, {n_events.min()}-{n_events.max()} per sample, "
        f"recordings end at {t_end.min() / 1000:.1f}-{t_end.max() / 1000:.1f} ms; 34x34x2 sensor; 10 classes"
    )
    manifest = _manifest_md5(folder)
    archives = [f for f in spec.files if (folder / f.name).is_file()]
    parts = []
    if archives:
        text, _ = checksum_summary(spec, folder, tuple(f.name for f in archives))
        parts.append(f"archives: {text}")
    if manifest:
        paths = [p for _, _, p in train + test]
        rel = [p.relative_to(folder).as_posix() for p in paths]
        ok = sum(manifest.get(r) == hashlib.md5(p.read_bytes()).hexdigest() for r, p in zip(rel, paths))
        parts.append(f"{ok}/{len(paths)} .bin md5 match MANIFEST.tsv")
    checks = "; ".join(parts) or "n/a (no published per-file checksums; archives not kept)"
    status = "ok" if all(present.values()) else "partial"
    location = str(folder) + ("" if status == "ok" else f" (only {', '.join(k for k, v in present.items() if v)})")
    details = {"note": note, "train_label_counts": np.bincount([lab for _, lab, _ in train], minlength=10).tolist()}
    return DatasetReport("nmnist", status, location, sizes, checks, details)


def report_ptb(data_dir: Path) -> DatasetReport:
    from astrosnn.data.text import load_ptb

    spec = registry.PTB
    folder = data_dir / spec.folder
    missing = [f.name for f in spec.files if not is_present(f, folder)]
    checks, per_file = checksum_summary(spec, folder)
    if missing:
        return DatasetReport("ptb", "missing", _missing_hint(spec, folder, missing), "", checks, per_file)
    try:
        c = load_ptb(data_dir, download=False)
    except DataError as e:
        return DatasetReport("ptb", "error", str(e), "", checks, per_file)
    sizes = f"train {len(c.train):,}, valid {len(c.valid):,}, test {len(c.test):,} words incl. <eos>; vocabulary {len(c.vocab):,}"
    return DatasetReport("ptb", "ok", str(folder), sizes, checks, per_file)


def report_char_corpus(name: str, data_dir: Path) -> DatasetReport:
    from astrosnn.data.text import load_corpus

    checks, per_file, location = "n/a (embedded)", {}, ""
    if name == "tinyshakespeare":
        spec = registry.TINYSHAKESPEARE
        folder = data_dir / spec.folder
        checks, per_file = checksum_summary(spec, folder)
        if not is_present(spec.files[0], folder):
            return DatasetReport(name, "missing", _missing_hint(spec, folder, ["input.txt"]), "", checks, per_file)
    try:
        c = load_corpus(name, data_dir, download=False)
    except DataError as e:
        return DatasetReport(name, "error", str(e), "", checks, per_file)
    location = c.source
    n = len(c.train) + len(c.valid) + len(c.test)
    sizes = f"{n:,} characters: train {len(c.train):,}, valid {len(c.valid):,}, test {len(c.test):,}; vocabulary {len(c.vocab)} characters"
    return DatasetReport(name, "ok", location, sizes, checks, per_file)


def dataset_reports(data_dir: str | Path | None = None) -> list[DatasetReport]:
    """One report per dataset, in DATASET_ORDER; never downloads, never raises for a missing dataset."""
    root = resolve_data_dir(data_dir)
    makers: dict[str, Callable[[], DatasetReport]] = {
        "digits": report_digits,
        "mnist": lambda: report_idx(registry.MNIST, root),
        "fashion-mnist": lambda: report_idx(registry.FASHION_MNIST, root),
        "nmnist": lambda: report_nmnist(root),
        "ptb": lambda: report_ptb(root),
        "tinyshakespeare": lambda: report_char_corpus("tinyshakespeare", root),
        "default": lambda: report_char_corpus("default", root),
    }
    return [makers[name]() for name in DATASET_ORDER]
