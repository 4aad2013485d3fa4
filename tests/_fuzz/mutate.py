"""Byte-level mutation with a seeded ``random.Random`` (the same seed, the same bytes).

:func:`mutate` applies one to four of: bit flips, byte overwrites, truncation,
duplicating a chunk, deleting a chunk, and writing a "interesting" number
(0, -1, 2**31, 2**63 spelt in octal or decimal) over a run of digits — tar
headers and JSON both keep their numbers as text.
"""
from __future__ import annotations

import random

_INTERESTING = [b"0", b"7777777777", b"77777777777", b"-1", b"99999999999", b"9223372036854775808",
                b"\x80\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00", b"\xff" * 11, b"", b"null", b"[]", b"{}"]


def _flip(data: bytearray, rng: random.Random) -> None:
    for _ in range(rng.randint(1, 8)):
        i = rng.randrange(len(data))
        data[i] ^= 1 << rng.randrange(8)


def _overwrite(data: bytearray, rng: random.Random) -> None:
    for _ in range(rng.randint(1, 8)):
        data[rng.randrange(len(data))] = rng.randrange(256)


def _truncate(data: bytearray, rng: random.Random) -> None:
    del data[rng.randrange(len(data)):]


def _duplicate(data: bytearray, rng: random.Random) -> None:
    i = rng.randrange(len(data))
    n = rng.choice([1, 8, 512, 1024, rng.randint(1, 4096)])
    at = rng.randrange(len(data) + 1)
    data[at:at] = data[i:i + n]


def _delete(data: bytearray, rng: random.Random) -> None:
    i = rng.randrange(len(data))
    n = rng.choice([1, 8, 512, rng.randint(1, 4096)])
    del data[i:i + n]


def _number(data: bytearray, rng: random.Random) -> None:
    """Replace a run of ASCII digits (a tar size field, a JSON size) with an extreme one."""
    for _ in range(20):
        i = rng.randrange(len(data))
        if 0x30 <= data[i] <= 0x39:
            j = i
            while j < len(data) and 0x30 <= data[j] <= 0x39:
                j += 1
            new = rng.choice(_INTERESTING)
            if rng.random() < 0.5:  # keep the length: a fixed-width tar field stays aligned
                new = (new * 12)[: j - i] if new else b"0" * (j - i)
            data[i:j] = new
            return


MUTATORS = [_flip, _overwrite, _truncate, _duplicate, _delete, _number]


def mutate(data: bytes, seed: int) -> bytes:
    """``data`` with 1-4 seeded mutations (never empty input: an empty result stays empty)."""
    rng = random.Random(seed)
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if not out:
            break
        rng.choice(MUTATORS)(out, rng)
    return bytes(out)
