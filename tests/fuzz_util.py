"""Seeded byte-level mutations for fuzz tests: reusable for any file format (data files, checkpoints).

Use through the `fuzz` fixture of tests/conftest.py (tests are not a package):

    def test_x(fuzz):
        rng = random.Random(0)
        name, mutated = fuzz.mutate(original, rng)                       # one of fuzz.MUTATIONS, bytes changed
        name, mutated = fuzz.mutate(original, rng, fuzz.RECORD_MUTATIONS, record=5)   # fixed-size records

Every mutation returns new bytes that differ from the input (mutate() retries and falls back to a bit
flip), so a file guarded by a checksum must always be refused. Each function takes (data, rng, **kw).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence

Mutation = Callable[..., bytes]
INTERESTING = (0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF)


def bit_flip(data: bytes, rng: random.Random, **_) -> bytes:
    """Flip one bit anywhere (for an empty input: a single random byte)."""
    if not data:
        return bytes([rng.randrange(256)])
    out = bytearray(data)
    i = rng.randrange(len(out))
    out[i] ^= 1 << rng.randrange(8)
    return bytes(out)


def byte_set(data: bytes, rng: random.Random, **_) -> bytes:
    """Set one byte to an 'interesting' value (0, 1, 0x7F, 0x80, 0xFE, 0xFF) or a random one."""
    if not data:
        return bytes([rng.randrange(256)])
    out = bytearray(data)
    out[rng.randrange(len(out))] = rng.choice(INTERESTING + (rng.randrange(256),))
    return bytes(out)


def truncate(data: bytes, rng: random.Random, **_) -> bytes:
    """Cut the file short (anywhere from empty to one byte short)."""
    return data[: rng.randrange(len(data))] if data else data


def extend(data: bytes, rng: random.Random, **_) -> bytes:
    """Append 1-16 random bytes."""
    return data + bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))


def insert(data: bytes, rng: random.Random, **_) -> bytes:
    """Insert 1-8 random bytes at a random offset."""
    i = rng.randint(0, len(data))
    return data[:i] + bytes(rng.randrange(256) for _ in range(rng.randint(1, 8))) + data[i:]


def delete(data: bytes, rng: random.Random, **_) -> bytes:
    """Delete 1-8 bytes at a random offset."""
    if not data:
        return data
    i = rng.randrange(len(data))
    return data[:i] + data[i + rng.randint(1, 8) :]


def header_edit(data: bytes, rng: random.Random, header: int = 16, **_) -> bytes:
    """Overwrite one of the first `header` bytes (magic numbers, sizes, flags) with an interesting value."""
    if not data:
        return bytes([rng.randrange(256)])
    out = bytearray(data)
    i = rng.randrange(min(header, len(out)))
    out[i] = rng.choice(INTERESTING + (out[i] ^ 0xFF, rng.randrange(256)))
    return bytes(out)


def duplicate_chunk(data: bytes, rng: random.Random, **_) -> bytes:
    """Repeat a chunk of 1-32 bytes in place."""
    if not data:
        return data
    i = rng.randrange(len(data))
    j = min(len(data), i + rng.randint(1, 32))
    return data[:j] + data[i:j] + data[j:]


def zero_range(data: bytes, rng: random.Random, **_) -> bytes:
    """Zero 1-32 consecutive bytes."""
    if not data:
        return data
    i = rng.randrange(len(data))
    j = min(len(data), i + rng.randint(1, 32))
    return data[:i] + bytes(j - i) + data[j:]


def swap_records(data: bytes, rng: random.Random, record: int = 5, **_) -> bytes:
    """Swap two whole fixed-size records (events out of order)."""
    n = len(data) // record
    if n < 2:
        return bit_flip(data, rng)
    a, b = sorted(rng.sample(range(n), 2))
    ra, rb = data[a * record : (a + 1) * record], data[b * record : (b + 1) * record]
    return data[: a * record] + rb + data[(a + 1) * record : b * record] + ra + data[(b + 1) * record :]


def drop_record(data: bytes, rng: random.Random, record: int = 5, **_) -> bytes:
    """Delete one whole fixed-size record (a dropped event): the length stays a multiple of `record`."""
    n = len(data) // record
    if n < 1:
        return bit_flip(data, rng)
    i = rng.randrange(n)
    return data[: i * record] + data[(i + 1) * record :]


def field_edit(data: bytes, rng: random.Random, record: int = 5, **_) -> bytes:
    """Overwrite one byte inside one record with an interesting value (a coordinate, a timestamp byte)."""
    n = len(data) // record
    if n < 1:
        return bit_flip(data, rng)
    out = bytearray(data)
    out[rng.randrange(n) * record + rng.randrange(record)] = rng.choice(INTERESTING + (rng.randrange(256),))
    return bytes(out)


MUTATIONS: tuple[Mutation, ...] = (
    bit_flip, byte_set, truncate, extend, insert, delete, header_edit, duplicate_chunk, zero_range,
)
RECORD_MUTATIONS: tuple[Mutation, ...] = MUTATIONS + (swap_records, drop_record, field_edit)


def mutate(data: bytes, rng: random.Random, mutations: Sequence[Mutation] = MUTATIONS, **kw) -> tuple[str, bytes]:
    """(name, mutated bytes) from one randomly chosen mutation; the result always differs from `data`."""
    for _ in range(20):
        fn = rng.choice(tuple(mutations))
        out = fn(data, rng, **kw)
        if out != data:
            return fn.__name__, out
    return "bit_flip", bit_flip(data, rng)


def cases(
    data: bytes, seed: int, n: int, mutations: Sequence[Mutation] = MUTATIONS, **kw
) -> Iterator[tuple[int, str, bytes]]:
    """n seeded mutations of `data`: (case number, mutation name, mutated bytes); the same seed, the same cases."""
    rng = random.Random(seed)
    for i in range(n):
        name, out = mutate(data, rng, mutations, **kw)
        yield i, name, out
