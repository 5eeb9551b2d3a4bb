"""A report on every dataset: where it was found (or what to put where), its sizes, its checksums.

Statuses: ok; modified (loads, but differs from the published checksums, accepted because verification was
switched off); corrupt (a checksum or a structural check fails); error (a file or folder cannot be read);
missing; partial (N-MNIST with only Train or Test)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from astrosnn.data import registry
from astrosnn.data.registry import DatasetFiles
from astrosnn.data.sources import (
    is_present,
    oserror_text,
    path_kind,
    read_file_bytes,
    resolve_data_dir,
)
from astrosnn.data.verify import OPT_OUT, read_manifest, verification_on
from astrosnn.errors import ChecksumError, DataAccessError, DataError

DATASET_ORDER = ("digits", "mnist", "fashion-mnist", "nmnist", "ptb", "tinyshakespeare", "default")
BAD_STATUSES = ("corrupt", "error")


@dataclass(frozen=True)
class DatasetReport:
    name: str
    status: str  # "ok" | "modified" | "corrupt" | "error" | "missing" | "partial"
    location: str  # where it was found, what to put where, or the fault (naming the file)
    sizes: str = ""
    checksums: str = ""
    details: dict = field(default_factory=dict)


def status_of(e: DataError) -> str:
    """'error' when a file or folder cannot be read, 'corrupt' when its content is wrong."""
    return "error" if isinstance(e, DataAccessError) else "corrupt"


def file_checksum(path: Path, known_hash: str) -> str:
    """'verified', 'MISMATCH' or 'missing' for one file against an 'alg:hex' known hash; a folder or an
    unreadable file is a DataAccessError naming it."""
    kind = path_kind(path)
    if kind == "missing":
        return "missing"
    if kind != "file":
        raise DataAccessError(f"{path}: is a folder, expected a data file" if kind == "dir" else f"{path}: not a regular file")
    alg, expected = known_hash.split(":", 1)
    return "verified" if hashlib.new(alg, read_file_bytes(path)).hexdigest() == expected else "MISMATCH"


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


def _accepted_status(per_file: dict) -> str:
    """ok, or modified when a checksum mismatch got through because verification is off."""
    return "modified" if "MISMATCH" in per_file.values() else "ok"


def _missing_hint(spec: DatasetFiles, folder: Path, names: list[str]) -> str:
    return f"missing: put {', '.join(names)} (from {spec.origin}) in {folder}"


def _check_published(key: str, spec: DatasetFiles, folder: Path) -> tuple[str, dict, DatasetReport | None]:
    """Checksum summary and per-file results of a dataset of published files, and its 'missing' report
    (None when every file is present)."""
    missing = [f.name for f in spec.files if not is_present(f, folder)]
    checks, per_file = checksum_summary(spec, folder)
    hint = _missing_hint(spec, folder, missing)
    return checks, per_file, DatasetReport(key, "missing", hint, "", checks, per_file) if missing else None


def report_digits() -> DatasetReport:
    import sklearn

    from astrosnn.data.images import DIGITS_SPLITS

    sizes = ", ".join(f"{s} {b - a}" for s, (a, b) in DIGITS_SPLITS.items())
    return DatasetReport(
        "digits", "ok", f"bundled with scikit-learn {sklearn.__version__}",
        f"{sizes}; 8x8 uint8 images; 10 classes", "n/a (embedded)",
    )


def report_idx(spec: DatasetFiles, data_dir: Path, verify: bool = True) -> DatasetReport:
    from astrosnn.data.images import (
        DIGIT_CLASSES,
        FASHION_CLASSES,
        IDX_TEST_SIZE,
        IDX_TRAIN_SIZE,
        IDX_VALIDATION_SIZE,
        read_idx_pair,
    )

    folder = data_dir / spec.folder
    checks, per_file = "n/a", {}
    try:
        checks, per_file, missing = _check_published(spec.key, spec, folder)
        if missing:
            return missing
        check = verification_on(verify)
        names = registry.IDX_NAMES
        known = [spec.file(n) if check else None for n in names]
        train, _ = read_idx_pair(folder / names[0], folder / names[1], IDX_TRAIN_SIZE, known=(known[0], known[1]))
        test, test_labels = read_idx_pair(folder / names[2], folder / names[3], IDX_TEST_SIZE, known=(known[2], known[3]))
    except DataError as e:
        return DatasetReport(spec.key, status_of(e), str(e), "", checks, per_file)
    classes = DIGIT_CLASSES if spec.key == "mnist" else FASHION_CLASSES
    sizes = (
        f"train {len(train) - IDX_VALIDATION_SIZE}, validation {IDX_VALIDATION_SIZE}, test {len(test)}; "
        f"{train.shape[1]}x{train.shape[2]} uint8 images; {len(classes)} classes ({', '.join(classes)})"
    )
    per_file["test_label_counts"] = np.bincount(test_labels, minlength=10).tolist()
    return DatasetReport(spec.key, _accepted_status(per_file), str(folder), sizes, checks, per_file)


def report_nmnist(data_dir: Path, verify: bool = True) -> DatasetReport:
    from astrosnn.data.nmnist import (
        decode_files,
        list_files,
        manifest_md5s,
        md5_mismatch,
        select_split,
    )

    spec = registry.NMNIST
    folder = data_dir / spec.folder
    check = verification_on(verify)
    checks = "n/a"
    try:
        present = {f.unpacks_to: is_present(f, folder) for f in spec.files}
        if not any(present.values()):
            hint = f"missing: put Train/<label>/<NNNNN>.bin and Test/<label>/<NNNNN>.bin (from {spec.origin}) in {folder}"
            return DatasetReport("nmnist", "missing", hint, "", "n/a")
        train = list_files(folder / "Train") if present["Train"] else []
        test = list_files(folder / "Test") if present["Test"] else []
        (tr, note), (va, _) = select_split("train", train), select_split("validation", train)
        parts, mismatched = [], False
        archives = [f.name for f in spec.files if path_kind(folder / f.name) != "missing"]
        if archives:
            text, per_archive = checksum_summary(spec, folder, tuple(archives))
            parts.append(f"archives: {text}")
            bad = [n for n, v in per_archive.items() if v == "MISMATCH"]
            if bad and check:
                raise ChecksumError(f"{folder / bad[0]}: md5 checksum mismatch with the published archive; {OPT_OUT}")
            mismatched |= bool(bad)
        manifest = read_manifest(folder)
        paths = [p for _, _, p in train + test]
        if manifest is not None:
            rel = [p.relative_to(folder).as_posix() for p in paths]
            actual = [hashlib.md5(read_file_bytes(p)).hexdigest() for p in paths]
            ok = [manifest.get(r) == a for r, a in zip(rel, actual)]
            parts.append(f"{sum(ok)}/{len(paths)} .bin md5 match MANIFEST.tsv")
            checks = "; ".join(parts)
            if check:
                for root, files in (("Train", train), ("Test", test)):
                    if present[root]:
                        manifest_md5s(folder, folder / root, files, manifest)
                if not all(ok):
                    i = ok.index(False)
                    raise md5_mismatch(paths[i], manifest[rel[i]], actual[i], paths[i].stat().st_size)
            mismatched |= not all(ok)
        checks = "; ".join(parts) or "n/a (no published per-file checksums; archives not kept)"
        events = decode_files(paths, plausible=check)
    except DataError as e:
        return DatasetReport("nmnist", status_of(e), str(e), "", checks)
    n_events = np.array([len(e) for e in events])
    t_end = np.array([int(e["t"].max()) if len(e) else 0 for e in events])
    sizes = (
        f"train {len(tr)}, validation {len(va)}, test {len(test)} files (of 60000/10000); "
        f"{int(n_events.sum()):,} events, {int(n_events.min())}-{int(n_events.max())} per sample, "
        f"recordings end at {t_end.min() / 1000:.1f}-{t_end.max() / 1000:.1f} ms; 34x34x2 sensor; 10 classes"
    )
    status = "ok" if all(present.values()) else "partial"
    if mismatched:
        status = "modified"
    location = str(folder) + ("" if all(present.values()) else f" (only {', '.join(k for k, v in present.items() if v)})")
    details = {"note": note, "train_label_counts": np.bincount([lab for _, lab, _ in train], minlength=10).tolist()}
    return DatasetReport("nmnist", status, location, sizes, checks, details)


def report_ptb(data_dir: Path, verify: bool = True) -> DatasetReport:
    from astrosnn.data.text import load_ptb

    spec = registry.PTB
    folder = data_dir / spec.folder
    checks, per_file = "n/a", {}
    try:
        checks, per_file, missing = _check_published("ptb", spec, folder)
        if missing:
            return missing
        c = load_ptb(data_dir, download=False, verify=verify)
    except DataError as e:
        return DatasetReport("ptb", status_of(e), str(e), "", checks, per_file)
    sizes = f"train {len(c.train):,}, valid {len(c.valid):,}, test {len(c.test):,} words incl. <eos>; vocabulary {len(c.vocab):,}"
    return DatasetReport("ptb", _accepted_status(per_file), str(folder), sizes, checks, per_file)


def report_char_corpus(name: str, data_dir: Path, verify: bool = True) -> DatasetReport:
    from astrosnn.data.text import load_corpus

    checks, per_file = "n/a (embedded)", {}
    try:
        if name == "tinyshakespeare":
            spec = registry.TINYSHAKESPEARE
            folder = data_dir / spec.folder
            present = is_present(spec.files[0], folder)
            checks, per_file = checksum_summary(spec, folder)
            if not present:
                return DatasetReport(name, "missing", _missing_hint(spec, folder, ["input.txt"]), "", checks, per_file)
        c = load_corpus(name, data_dir, download=False, verify=verify)
    except DataError as e:
        return DatasetReport(name, status_of(e), str(e), "", checks, per_file)
    n = len(c.train) + len(c.valid) + len(c.test)
    sizes = f"{n:,} characters: train {len(c.train):,}, valid {len(c.valid):,}, test {len(c.test):,}; vocabulary {len(c.vocab)} characters"
    return DatasetReport(name, _accepted_status(per_file), c.source, sizes, checks, per_file)


def _guarded(name: str, make: Callable[[], DatasetReport]) -> DatasetReport:
    """A report, never an exception: any data or OS fault left over becomes an 'error' row naming it."""
    try:
        return make()
    except DataError as e:
        return DatasetReport(name, status_of(e), str(e), "", "n/a")
    except OSError as e:
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        return DatasetReport(name, "error", f"{where}{oserror_text(e)}", "", "n/a")


def dataset_reports(data_dir: str | Path | None = None, verify: bool = True) -> list[DatasetReport]:
    """One report per dataset, in DATASET_ORDER; never downloads, never raises for a missing or damaged dataset.

    With verification on (the default; off with `verify=False` or $ASTROSNN_SKIP_CHECKSUMS=1) a checksum
    mismatch makes the dataset 'corrupt'; with it off, a dataset that loads despite one is 'modified'."""
    root = resolve_data_dir(data_dir)
    makers: dict[str, Callable[[], DatasetReport]] = {
        "digits": report_digits,
        "mnist": lambda: report_idx(registry.MNIST, root, verify),
        "fashion-mnist": lambda: report_idx(registry.FASHION_MNIST, root, verify),
        "nmnist": lambda: report_nmnist(root, verify),
        "ptb": lambda: report_ptb(root, verify),
        "tinyshakespeare": lambda: report_char_corpus("tinyshakespeare", root, verify),
        "default": lambda: report_char_corpus("default", root, verify),
    }
    return [_guarded(name, makers[name]) for name in DATASET_ORDER]
