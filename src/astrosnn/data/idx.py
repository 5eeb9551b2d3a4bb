"""IDX files (LeCun's MNIST format), optionally gzip-compressed: checksum, header checks, then one np.frombuffer."""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np

from astrosnn.data.registry import RemoteFile
from astrosnn.data.sources import read_file_bytes
from astrosnn.data.verify import check_known
from astrosnn.errors import DataError

IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension


def read_bytes(path: Path, known: RemoteFile | None = None) -> bytes:
    """The file's bytes, gunzipped if it ends in .gz; a truncated or corrupt gzip names the file.

    With `known` (a registry entry: hash and size of the file as stored), any other content is a ChecksumError."""
    raw = read_file_bytes(path)
    check_known(path, raw, known)
    if path.suffix != ".gz":
        return raw
    try:
        return gzip.decompress(raw)
    except EOFError:
        raise DataError(f"{path}: truncated gzip file (compressed data ends early)") from None
    except (gzip.BadGzipFile, zlib.error, OSError) as e:
        raise DataError(f"{path}: corrupt gzip file ({e})") from None


def parse_idx(path: Path, data: bytes, magic: int) -> np.ndarray:
    """An IDX ubyte array from its bytes: checks the magic number, the dimensions and the data length."""
    if len(data) < 4:
        raise DataError(f"{path}: too short for an IDX header ({len(data)} bytes)")
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise DataError(f"{path}: wrong IDX magic number {found} (expected {magic})")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: IDX header cut short ({len(data)} bytes, needs {header})")
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    size = math.prod(dims)  # Python ints: a huge header cannot overflow into a plausible size
    if len(data) - header != size:
        raise DataError(
            f"{path}: IDX data size mismatch: header says {'x'.join(map(str, dims))} "
            f"({size:,} bytes) but the file holds {len(data) - header:,}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def read_idx(path: Path, magic: int, known: RemoteFile | None = None) -> np.ndarray:
    """An IDX ubyte array from a file (see read_bytes and parse_idx)."""
    return parse_idx(path, read_bytes(path, known), magic)
