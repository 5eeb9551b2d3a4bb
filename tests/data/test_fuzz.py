"""Fuzz: seeded mutations of small IDX and N-MNIST files (and N-MNIST manifests).

Every outcome must be either a clean one-line DataError naming the file, or an accepted file that an
independent reference reader also finds valid and decodes to the same values, and that no checksum guarded.
Any other exception type fails the test with the case number, the mutation and the exception.
"""

from __future__ import annotations

import collections
import gzip
import hashlib
import random
import time

import numpy as np
import pytest

from astrosnn.data import registry
from astrosnn.data.idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx
from astrosnn.data.nmnist import MAX_END_US, load_nmnist
from astrosnn.data.registry import RemoteFile
from astrosnn.errors import AstrosnnError, DataError

N_IDX, N_IDX_REAL, N_NMNIST, N_MANIFEST = 240, 60, 240, 60


def _clean(e: AstrosnnError, path) -> str:
    msg = str(e)
    assert isinstance(e, DataError), f"{type(e).__name__}: {msg}"
    assert "\n" not in msg and "np." not in msg and "Traceback" not in msg, msg
    assert str(path) in msg, f"the message does not name {path}: {msg}"
    return msg


# --- IDX ----------------------------------------------------------------------------------------

def _idx(magic: int, dims: tuple[int, ...], rng: np.random.Generator) -> bytes:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims)
    return header + rng.integers(0, 256, size=int(np.prod(dims)), dtype=np.uint8).tobytes()


def _reference_idx(data: bytes, gz: bool, magic: int):
    """An independent reader: the array a valid file holds, or None when the file is not valid IDX."""
    if gz:
        try:
            data = gzip.decompress(data)
        except Exception:
            return None
    if len(data) < 4 or int.from_bytes(data[:4], "big") != magic:
        return None
    ndim = data[3]
    if len(data) < 4 + 4 * ndim:
        return None
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    size = 1
    for d in dims:
        size *= d
    if len(data) != 4 + 4 * ndim + size:
        return None
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def test_fuzz_idx(tmp_path, fuzz):
    rng = np.random.default_rng(0)
    bases = {
        (IMAGES_MAGIC, False): _idx(IMAGES_MAGIC, (3, 4, 5), rng),
        (LABELS_MAGIC, False): _idx(LABELS_MAGIC, (7,), rng),
    }
    for magic in (IMAGES_MAGIC, LABELS_MAGIC):
        bases[(magic, True)] = gzip.compress(bases[(magic, False)], mtime=0)
    keys = sorted(bases)
    counts, pick = collections.Counter(), random.Random(1)
    t0 = time.perf_counter()
    for i in range(N_IDX):
        magic, gz = keys[i % len(keys)]
        original = bases[(magic, gz)]
        name, mutated = fuzz.mutate(original, pick)
        guarded = i % 3 == 0  # a third with a known checksum, as for the registry's files
        known = RemoteFile("f", "", "md5:" + hashlib.md5(original).hexdigest(), len(original)) if guarded else None
        path = tmp_path / f"case{i:03d}.idx{'.gz' if gz else ''}"
        path.write_bytes(mutated)
        try:
            array = read_idx(path, magic, known)
        except AstrosnnError as e:
            _clean(e, path)
            counts["refused"] += 1
            continue
        except Exception as e:  # noqa: BLE001 - any other type is the failure this test looks for
            pytest.fail(f"IDX case {i} ({name}, gz={gz}): {type(e).__name__}: {e}")
        assert not guarded, f"IDX case {i} ({name}): a mutated file passed its checksum"
        expected = _reference_idx(mutated, gz, magic)
        assert expected is not None, f"IDX case {i} ({name}, gz={gz}): an invalid file was accepted"
        np.testing.assert_array_equal(array, expected)
        counts["accepted (valid, no checksum)"] += 1
    elapsed = time.perf_counter() - t0
    print(f"IDX fuzz: {N_IDX} cases, {dict(counts)}, {elapsed:.2f} s")
    assert counts["refused"] > N_IDX / 2 and counts["accepted (valid, no checksum)"] > 0
    assert sum(counts.values()) == N_IDX


def test_fuzz_real_mnist_labels_against_registry(shared_data, tmp_path, fuzz):
    """The real 4.5 kB t10k labels file against its registry md5: every mutation is refused."""
    remote = registry.MNIST.file("t10k-labels-idx1-ubyte.gz")
    original = (shared_data / "mnist" / remote.name).read_bytes()
    counts = collections.Counter()
    for i, name, mutated in fuzz.cases(original, 2, N_IDX_REAL):
        path = tmp_path / f"{i:03d}-{remote.name}"
        path.write_bytes(mutated)
        try:
            read_idx(path, LABELS_MAGIC, remote)
        except AstrosnnError as e:
            counts[type(e).__name__] += 1
            _clean(e, path)
            continue
        except Exception as e:  # noqa: BLE001
            pytest.fail(f"MNIST labels case {i} ({name}): {type(e).__name__}: {e}")
        pytest.fail(f"MNIST labels case {i} ({name}): a mutated file passed its registry checksum")
    print(f"real-labels fuzz: {N_IDX_REAL} cases, {dict(counts)}")
    assert counts == {"ChecksumError": N_IDX_REAL}


# --- N-MNIST ------------------------------------------------------------------------------------

def _encode(x, y, p, t):
    return bytes([x, y, (p << 7) | (t >> 16), (t >> 8) & 0xFF, t & 0xFF])


def _events(rng: random.Random) -> bytes:
    n = rng.randint(3, 30)
    times = sorted(rng.randrange(300_000) for _ in range(n))
    return b"".join(_encode(rng.randrange(34), rng.randrange(34), rng.randrange(2), t) for t in times)


def _reference_events(data: bytes):
    """Independent decoder and checker: a list of (x, y, p, t) when the file is valid, else None."""
    if not data or len(data) % 5:
        return None
    out, extra = [], 0
    for k in range(0, len(data), 5):
        x, y, b2, b3, b4 = data[k : k + 5]
        if y == 240:
            extra += 8192
            continue
        if x >= 34 or y >= 34:
            return None
        t = ((b2 & 0x7F) << 16 | b3 << 8 | b4) + extra
        if out and t < out[-1][3]:
            return None
        out.append((x, y, b2 >> 7, t))
    if not out or out[-1][3] > MAX_END_US:
        return None
    return out


def _write_folder(root, files: dict[str, bytes], manifest: bool) -> None:
    for rel, data in files.items():
        path = root / "nmnist" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    if manifest:
        rows = ["placed_path\tlabel\tmd5"] + [f"{r}\t{r.split('/')[1]}\t{hashlib.md5(d).hexdigest()}" for r, d in files.items()]
        (root / "nmnist" / "MANIFEST.tsv").write_text("\n".join(rows) + "\n")


def test_fuzz_nmnist_event_files(tmp_path, fuzz):
    pick = random.Random(3)
    counts = collections.Counter()
    t0 = time.perf_counter()
    for i in range(N_NMNIST):
        original = {f"Test/{label}/{k:05d}.bin": _events(pick) for k, label in ((1, 7), (2, 2), (3, 1))}
        target = pick.choice(sorted(original))
        with_manifest = i % 2 == 0  # half the folders have a MANIFEST.tsv describing the original files
        root = tmp_path / f"case{i:03d}"
        _write_folder(root, original, with_manifest)
        files = dict(original)
        name, files[target] = fuzz.mutate(original[target], pick, fuzz.RECORD_MUTATIONS, record=5, header=5)
        path = root / "nmnist" / target
        path.write_bytes(files[target])
        try:
            es = load_nmnist("test", data_dir=root, download=False)
        except AstrosnnError as e:
            _clean(e, path)
            counts["refused (manifest)" if with_manifest else "refused (structure)"] += 1
            continue
        except Exception as e:  # noqa: BLE001
            pytest.fail(f"N-MNIST case {i} ({name}): {type(e).__name__}: {e}")
        assert not with_manifest, f"N-MNIST case {i} ({name}): a mutated file passed its manifest md5"
        got = dict(zip(es.files, es.events))[target]
        expected = _reference_events(files[target])
        assert expected is not None, f"N-MNIST case {i} ({name}): an invalid event file was accepted"
        assert got.tolist() == expected, f"N-MNIST case {i} ({name}): decoded differently"
        counts["accepted (valid, no manifest)"] += 1
    elapsed = time.perf_counter() - t0
    print(f"N-MNIST fuzz: {N_NMNIST} cases, {dict(counts)}, {elapsed:.2f} s")
    assert counts["refused (manifest)"] == N_NMNIST // 2
    assert counts["refused (structure)"] > 0 and counts["accepted (valid, no manifest)"] > 0


def _reference_manifest(text: bytes):
    """Independent manifest reader: {placed_path: md5} or None when malformed."""
    try:
        lines = text.decode("utf-8").split("\n")
    except UnicodeDecodeError:
        return None
    rows = [line.split("\t") for line in lines if line != ""]
    if not rows or "placed_path" not in rows[0] or "md5" not in rows[0]:
        return None
    ip, im = rows[0].index("placed_path"), rows[0].index("md5")
    out = {}
    for row in rows[1:]:
        if len(row) != len(rows[0]) or len(row[im]) != 32 or any(c not in "0123456789abcdef" for c in row[im]):
            return None
        if row[ip] in out:
            return None
        out[row[ip]] = row[im]
    return out


def test_fuzz_nmnist_manifest(tmp_path, fuzz):
    """Mutated manifests: refused, or accepted only when they still list exactly the files with their md5s."""
    pick = random.Random(4)
    counts = collections.Counter()
    for i in range(N_MANIFEST):
        files = {f"Test/{label}/{k:05d}.bin": _events(pick) for k, label in ((1, 7), (2, 2))}
        root = tmp_path / f"case{i:03d}"
        _write_folder(root, files, manifest=True)
        manifest = root / "nmnist" / "MANIFEST.tsv"
        name, mutated = fuzz.mutate(manifest.read_bytes(), pick)
        manifest.write_bytes(mutated)
        try:
            load_nmnist("test", data_dir=root, download=False)
        except AstrosnnError as e:
            _clean(e, root / "nmnist")
            counts["refused"] += 1
            continue
        except Exception as e:  # noqa: BLE001
            pytest.fail(f"manifest case {i} ({name}): {type(e).__name__}: {e}")
        listed = _reference_manifest(mutated)
        want = {r: hashlib.md5(d).hexdigest() for r, d in files.items()}
        assert listed is not None and listed == want, f"manifest case {i} ({name}): accepted a manifest that differs"
        counts["accepted (same paths and md5s)"] += 1
    print(f"manifest fuzz: {N_MANIFEST} cases, {dict(counts)}")
    assert counts["refused"] > N_MANIFEST / 2
