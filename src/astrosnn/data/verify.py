"""Checksums enforced at load time: the registry's known hashes and an N-MNIST folder's MANIFEST.tsv md5s.

A file that differs from its known checksum is refused with a ChecksumError naming the file, the expected
and the actual value. Users with deliberately modified data opt out with `verify=False` on the loaders or
the environment variable ASTROSNN_SKIP_CHECKSUMS=1 (which the CLI honours too).
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
from pathlib import Path

from astrosnn.data.registry import RemoteFile
from astrosnn.errors import ChecksumError, DataAccessError, DataError

SKIP_ENV = "ASTROSNN_SKIP_CHECKSUMS"
OPT_OUT = f"to use modified data on purpose pass verify=False (Python) or set {SKIP_ENV}=1"
MANIFEST = "MANIFEST.tsv"
_HEX = re.compile(r"^[0-9a-f]+$")


def skip_requested() -> bool:
    """True when $ASTROSNN_SKIP_CHECKSUMS asks to skip checksum verification."""
    return os.environ.get(SKIP_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def verification_on(verify: bool = True) -> bool:
    """Checksums are verified unless `verify` is False or $ASTROSNN_SKIP_CHECKSUMS is set."""
    return bool(verify) and not skip_requested()


def check_known(path: Path, data: bytes, known: RemoteFile | None) -> None:
    """check_bytes against a registry entry (its hash and size); nothing to check when `known` is None."""
    if known is not None:
        check_bytes(path, data, known.known_hash, known.size)


def hexdigest(data: bytes, alg: str) -> str:
    return hashlib.new(alg, data).hexdigest()


def check_bytes(path: Path, data: bytes, known_hash: str, size: int | None = None, source: str = "") -> None:
    """Raise ChecksumError unless `data` (the content of `path`) has the 'alg:hex' hash `known_hash`;
    `size` (the known length, if any) makes the message say when the file is cut short or too long."""
    alg, expected = known_hash.split(":", 1)
    actual = hexdigest(data, alg)
    if actual == expected:
        return
    length = f"{len(data):,} bytes" + (f", expected {size:,}" if size is not None and size != len(data) else "")
    raise ChecksumError(
        f"{path}: {alg} checksum mismatch (expected {expected}{' from ' + source if source else ''}, "
        f"got {actual}; {length}): the file is damaged or not the official one; fetch it again, or {OPT_OUT}"
    )


def read_manifest(folder: Path) -> dict[str, str] | None:
    """{relative path: md5} from `<folder>/MANIFEST.tsv` (columns placed_path and md5), or None when the
    folder has no manifest. A manifest that cannot be read or parsed is a DataError naming it."""
    from astrosnn.data.sources import path_kind, read_file_bytes

    path = folder / MANIFEST
    kind = path_kind(path)
    if kind == "missing":
        return None
    if kind != "file":
        raise DataAccessError(f"{path}: is not a regular file")
    try:
        text = read_file_bytes(path).decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text (invalid byte at offset {e.start})") from None
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter="\t"))
    if not rows or "placed_path" not in rows[0] or "md5" not in rows[0]:
        raise DataError(f"{path}: not a manifest (the first line must name the columns placed_path and md5)")
    i_path, i_md5 = rows[0].index("placed_path"), rows[0].index("md5")
    out: dict[str, str] = {}
    for n, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(rows[0]):
            raise DataError(f"{path}: line {n} has {len(row)} columns, the header has {len(rows[0])}")
        rel, md5 = row[i_path], row[i_md5]
        if len(md5) != 32 or not _HEX.match(md5):
            raise DataError(f"{path}: line {n}: {md5!r} is not an md5 (32 lower-case hex digits)")
        if rel in out:
            raise DataError(f"{path}: line {n}: {rel} is listed twice")
        out[rel] = md5
    return out
