"""Noun codec tests: vere's vectors (serial_tests.c, ur/tests.c, retrieve_tests.c), edge cases, properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seguro.urbit import noun as N
from seguro.urbit.noun import (
    atom_bytes,
    atom_from_bytes,
    cord,
    cue,
    equal,
    from_list,
    is_noun,
    jam,
    mug,
    tape,
    term,
    to_list,
    uncord,
    untape,
)


def nc(a, b):
    return (a, b)


def nt(a, b, c):
    return (a, (b, c))


FAST = 0x74736166
FULL = 0x6C6C7566
ALPHA = cord("abcdefjhijklmnopqrstuvwxyz")

# (name, noun, jam bytes): pkg/noun/serial_tests.c and pkg/ur/tests.c (the latter is a subset of the former)
VECTORS = [
    ("0", 0, [0x2]),
    ("1", 1, [0xC]),
    ("2", 2, [0x48]),
    ("%fast", FAST, [0xC0, 0x37, 0xB, 0x9B, 0xA3, 0x3]),
    ("%full", FULL, [0xC0, 0x37, 0xAB, 0x63, 0x63, 0x3]),
    ("[0 0]", nc(0, 0), [0x29]),
    ("[1 1]", nc(1, 1), [0x31, 0x3]),
    ("[1 2]", nc(1, 2), [0x31, 0x12]),
    ("[2 3]", nc(2, 3), [0x21, 0xD1]),
    ("[%fast %full]", nc(FAST, FULL), [0x1, 0xDF, 0x2C, 0x6C, 0x8E, 0xE, 0x7C, 0xB3, 0x3A, 0x36, 0x36]),
    ("[1 1 1]", nc(1, nc(1, 1)), [0x71, 0xCC]),
    ("[1 2 3]", nt(1, 2, 3), [0x71, 0x48, 0x34]),
    (
        "[%fast %full %fast]",
        nc(FAST, nc(FULL, FAST)),
        [0x1, 0xDF, 0x2C, 0x6C, 0x8E, 0x1E, 0xF0, 0xCD, 0xEA, 0xD8, 0xD8, 0x93],
    ),
    ("[[1 2] 3]", nc(nc(1, 2), 3), [0xC5, 0x48, 0x34]),
    ("[[1 2] [1 2] 1 2]", nt(nc(1, 2), nc(1, 2), nc(1, 2)), [0xC5, 0xC8, 0x26, 0x27, 0x1]),
    (
        "[[0 0] [[0 0] 1 1] 1 1]",
        nc(nc(0, 0), nc(nc(nc(0, 0), nc(1, 1)), nc(1, 1))),
        [0xA5, 0x35, 0x19, 0xF3, 0x18, 0x5],
    ),
    (
        "deep",
        nc(
            nc(nc(1, nc(nc(2, nc(nc(3, nc(nc(4, nc(nt(5, 6, nc(7, nc(nc(8, 0), 0))), 0)), 0)), 0)), 0)), 0), 0
        ),
        [0x15, 0x17, 0xB2, 0xD0, 0x85, 0x59, 0xB8, 0x61, 0x87, 0x5F, 0x10, 0x54, 0x55, 0x5],
    ),
    ("wide", atom_from_bytes(bytes(32) + b"\x01"), [0, 12] + [0] * 32 + [8]),
    (
        "date",
        atom_from_bytes(bytes([0, 0, 0, 0, 0, 0, 0xC, 0xA8, 0xAB, 0x60, 0xEF, 0x2D, 0xD, 0, 0, 0x80])),
        [0x0, 0x2, 0, 0, 0, 0, 0, 0, 0x18, 0x50, 0x57, 0xC1, 0xDE, 0x5B, 0x1A, 0, 0, 0, 0x1],
    ),
    (
        "alpha",
        (ALPHA, (2, (3, ALPHA))),
        [0x1, 0xF8, 0xC, 0x13, 0x1B, 0x23, 0x2B, 0x33, 0x53, 0x43, 0x4B, 0x53, 0x5B, 0x63, 0x6B, 0x73, 0x7B]
        + [0x83, 0x8B, 0x93, 0x9B, 0xA3, 0xAB, 0xB3, 0xBB, 0xC3, 0xCB, 0xD3, 0x87, 0xC, 0x3D, 0x9],
    ),
]


@pytest.mark.parametrize(("name", "noun", "expected"), VECTORS, ids=[v[0] for v in VECTORS])
def test_jam_matches_vere(name: str, noun, expected: list[int]) -> None:
    assert jam(noun) == bytes(expected)


@pytest.mark.parametrize(("name", "noun", "expected"), VECTORS, ids=[v[0] for v in VECTORS])
def test_cue_matches_vere(name: str, noun, expected: list[int]) -> None:
    assert equal(cue(bytes(expected)), noun)


# pkg/noun/retrieve_tests.c
def test_mug_vectors_from_retrieve_tests() -> None:
    assert mug(cord("Hello, world!")) == 0x4D441035
    assert N._mug_fold(b"", 0xCAFEBABE, 0x7FFF) == 0x79FF04E8 == mug(0)
    assert N._mug_fold(b"\x01", 0xCAFEBABE, 0x7FFF) == 0x715C2A60 == mug(1)
    assert N._mug_fold(b"\x02", 0xCAFEBABE, 0x7FFF) == 0x718B9468 == mug(2)
    assert N.mug_both(0x715C2A60, mug((2, 3))) == 0x3A811AEC == mug((1, (2, 3)))
    assert mug((0, 0)) == 0x192F5588
    assert mug((1, 1)) == 0x6B32EC46
    assert mug((2, 2)) == 0x2EFFE10
    assert mug(cord("x" * 28)) == 0x64DFDA5C
    assert mug((0, 1 << 32)) == 0x7CEFB7F
    assert mug(((1 << 128) - 1, 1)) == 0x2AA06BFC
    with_zeros = ((1 << 212) ^ cord("abcdefjhijklmnopqrstuvwxyz")) << 8
    assert mug(with_zeros) == 0x34D08717
    assert mug(1 << 96) == 0x519BD45C
    assert mug((1 << 96) | (1 << 32)) == 0x540EB8A9
    assert mug((1 << 96) | (1 << 32) | 1) == 0x319D28F9
    assert mug(0xFFFF << 96) == 0x5230A260


def test_pure_python_murmur_matches_extension() -> None:
    for data in [b"", b"\x01", b"abc", b"abcd", b"abcde", bytes(range(256)) * 3]:
        for seed in (0, 0xCAFEBABE, 0xDEADBEEF, 0xFFFFFFFF):
            assert N._murmur3_py(data, seed) == N._murmur3(data, seed)


def test_mug_retries_with_next_seed_and_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    seeds: list[int] = []

    def zero_until(data: bytes, seed: int) -> int:
        seeds.append(seed)
        return 0 if seed < 0xCAFEBABE + 3 else 0x80000001  # 0x80000001 folds to 1 ^ 1 == 0 as well

    monkeypatch.setattr(N, "_murmur3", zero_until)
    assert N._mug_fold(b"x", 0xCAFEBABE, 0x7FFF) == 0x7FFF
    assert seeds == [0xCAFEBABE + i for i in range(8)]
    monkeypatch.setattr(N, "_murmur3", lambda data, seed: 0 if seed == 0xDEADBEEF else 5)
    assert N._mug_fold(b"x", 0xDEADBEEF, 0xFFFE) == 5
    monkeypatch.setattr(N, "_murmur3", lambda data, seed: 0)
    assert N._mug_fold(b"x", 0xDEADBEEF, 0xFFFE) == 0xFFFE


# ---------------------------------------------------------------- back-reference rules


def test_repeated_atom_backref_only_when_longer_than_offset() -> None:
    big = (1 << 40) + 7  # 41 bits, first at bit 2: the repeat becomes a back-reference
    small = from_list([1] * 20)
    assert equal(cue(jam(small)), small)
    naive = _reference_jam(small)
    assert jam(small) == naive
    assert jam((big, big)) == _reference_jam((big, big))
    assert len(jam((big, big))) < 2 * len(jam(big))


def test_reencoded_atom_keeps_first_offset() -> None:
    """vere never moves an atom's recorded offset when it re-encodes it in full."""
    noun = from_list([3] * 10 + [(1 << 70) - 1] * 3 + [3] * 50)
    assert jam(noun) == _reference_jam(noun)


def _reference_jam(noun) -> bytes:
    """A direct, recursive transcription of vere's jam over a bit list: a check on the optimised one."""
    bits: list[int] = []
    seen: dict = {}

    def mat(a: int) -> None:
        if a == 0:
            bits.append(1)
            return
        b = a.bit_length()
        c = b.bit_length()
        bits.extend([0] * c + [1] + [(b >> i) & 1 for i in range(c - 1)] + [(a >> i) & 1 for i in range(b)])

    def walk(n) -> None:
        key = _freeze(n)
        if key in seen:
            off = seen[key]
            if isinstance(n, int) and n.bit_length() <= off.bit_length():
                bits.append(0)
                mat(n)
            else:
                bits.extend([1, 1])
                mat(off)
            return
        seen[key] = len(bits)
        if isinstance(n, int):
            bits.append(0)
            mat(n)
        else:
            bits.extend([1, 0])
            walk(n[0])
            walk(n[1])

    walk(noun)
    value = sum(bit << i for i, bit in enumerate(bits))
    return atom_bytes(value)


def _freeze(n):
    return ("a", n) if isinstance(n, int) else ("c", repr(n))


# ---------------------------------------------------------------- deep and shared nouns


def test_deep_list_without_recursion() -> None:
    items = list(range(100_000))
    noun = from_list(items)
    data = jam(noun)
    back = cue(data)
    assert to_list(back) == items
    assert equal(back, noun)
    assert mug(back) == mug(noun)
    assert not equal(back, from_list(items[:-1] + [7]))


def test_deep_left_nested() -> None:
    noun = 0
    for i in range(50_000):
        noun = (noun, i)
    assert equal(cue(jam(noun)), noun)
    assert mug(cue(jam(noun))) == mug(noun)


def test_exponential_dag_stays_linear() -> None:
    """x = (x, x) a hundred times is a 2^100-leaf tree: everything must use sharing."""
    x = 1
    y = 1
    for _ in range(100):
        x = (x, x)
        y = (y, (y[0], y[1]) if isinstance(y, tuple) else y)  # equal by value, distinct objects
    data = jam(x)
    assert len(data) < 2000
    back = cue(data)
    assert equal(back, x) and equal(back, y)
    assert mug(back) == mug(x) == mug(y)
    assert jam(back) == data


# ---------------------------------------------------------------- malformed input


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"", "empty"),
        (b"\x00", "truncated"),
        (b"\x01", "truncated"),  # cell tag with no head
        (b"\x05", "truncated"),  # [0 ...] with no tail
        (b"\x03", "truncated"),  # back-reference tag, nothing after
        (b"\x00" * 9 + b"\x01", "too long"),  # 64+ zero bits of length prefix
        (b"\x0f", "back-reference"),  # backref to bit 0, where no completed noun starts
        (b"\x02\x01", "trailing"),
        (bytes([0xC0, 0x37, 0xB, 0x9B, 0xA3]), "truncated"),  # %fast cut short
    ],
)
def test_cue_rejects(data: bytes, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        cue(data)


def test_cue_rejects_huge_claimed_length_without_allocating() -> None:
    # atom tag, then a length prefix with c = 61 zero bits claiming a ~2^60-bit atom
    c = 61
    width = 1 << 60
    value = (1 << c) | ((width ^ (1 << (c - 1))) << (c + 1))
    data = atom_bytes(value << 1) + b"\xff" * 16  # the header is complete, the atom is not
    with pytest.raises(ValueError, match="claims"):
        cue(data)


def test_cue_rejects_backref_to_ancestor_or_mid_noun() -> None:
    # [0 <backref to 0>]: bit 0 is the enclosing cell, not complete yet
    bits = [1, 0, 0, 1, 1, 1, 1]  # cell, atom 0, backref mat(0)
    with pytest.raises(ValueError, match="back-reference"):
        cue(atom_bytes(sum(b << i for i, b in enumerate(bits))))
    # [0 <backref to 3>]: bit 3 is inside atom 0's encoding
    bits = [1, 0, 0, 1, 1, 1, 0, 0, 1, 1, 1]  # mat(3) = 0 0 1 1 1
    with pytest.raises(ValueError, match="back-reference"):
        cue(atom_bytes(sum(b << i for i, b in enumerate(bits))))


@given(st.binary(max_size=64))
@settings(max_examples=300, deadline=None)
def test_cue_of_garbage_never_hangs(data: bytes) -> None:
    try:
        noun = cue(data)
    except ValueError:
        return
    assert is_noun(noun)
    assert equal(cue(jam(noun)), noun)  # whatever cue accepts is a noun jam can write back


@st.composite
def damaged_jams(draw: st.DrawFn) -> bytes:
    """A real jam of a noun with shared subtrees, then a flipped bit or a cut: garbage that looks right."""
    data = bytearray(jam(draw(shared_nouns())))
    if draw(st.booleans()):
        bit = draw(st.integers(0, len(data) * 8 - 1))
        data[bit // 8] ^= 1 << (bit % 8)
    else:
        del data[draw(st.integers(0, len(data) - 1)) :]
    return bytes(data)


@given(damaged_jams())
@settings(max_examples=300, deadline=None)
def test_cue_of_damaged_jams_raises_or_gives_a_noun_that_round_trips(data: bytes) -> None:
    try:
        noun = cue(data)
    except ValueError:
        return
    assert is_noun(noun) and equal(cue(jam(noun)), noun)


def test_jam_rejects_non_nouns() -> None:
    with pytest.raises(ValueError):
        jam(-1)
    with pytest.raises(ValueError, match="natural"):
        jam((1, -1))  # cell value numbers are negative: an invalid atom must not alias one
    with pytest.raises(ValueError, match="natural"):
        jam((((5, 5), 0), (-1, 0)))  # -1 is the first cell's number: it once became a back-reference
    with pytest.raises(TypeError):
        jam(((1, 0), (1.0, 0)))  # 1.0 == 1: it once became a back-reference to (1, 0)
    with pytest.raises(TypeError):
        jam(("a", 1))
    with pytest.raises(ValueError, match="2-tuple"):
        jam((1, 2, 3))
    with pytest.raises(ValueError, match="2-tuple"):
        mug((1, (2, 3, 4)))


# ---------------------------------------------------------------- helpers


def test_helpers() -> None:
    assert cord("fast") == FAST and term("full") == FULL
    assert uncord(cord("héllo")) == "héllo"
    assert uncord(0) == ""
    assert atom_bytes(0) == b"" and atom_bytes(256) == b"\x00\x01"
    assert atom_from_bytes(b"\x00\x01\x00\x00") == 256
    assert from_list([]) == 0 and from_list([1, 2]) == (1, (2, 0))
    assert to_list((1, (2, 0))) == [1, 2]
    with pytest.raises(ValueError, match="null-terminated"):
        to_list((1, 2))
    assert untape(tape("hi ~zod")) == "hi ~zod"
    assert tape("ab") == (97, (98, 0))
    assert is_noun((1, (2, 3))) and not is_noun((1, -2)) and not is_noun((1,)) and not is_noun("x")


# ---------------------------------------------------------------- properties


def _nouns() -> st.SearchStrategy:
    atoms = st.one_of(st.integers(0, 300), st.integers(0, 1 << 70), st.integers(0, 1 << 300))
    return st.recursive(atoms, lambda kids: st.tuples(kids, kids), max_leaves=40)


@st.composite
def shared_nouns(draw: st.DrawFn):
    """Nouns built from a pool that keeps reusing earlier subtrees, so back-references occur."""
    pool = [draw(st.integers(0, 1 << 80)) for _ in range(3)]
    for _ in range(draw(st.integers(1, 40))):
        i = draw(st.integers(0, len(pool) - 1))
        j = draw(st.integers(0, len(pool) - 1))
        pool.append((pool[i], pool[j]) if draw(st.booleans()) else draw(_nouns()))
    return pool[-1] if draw(st.booleans()) else from_list(pool)


@given(shared_nouns())
@settings(max_examples=200, deadline=None)
def test_roundtrip_shared(noun) -> None:
    data = jam(noun)
    back = cue(data)
    assert equal(back, noun)
    assert jam(back) == data
    assert data == _reference_jam(noun)


@given(shared_nouns())
@settings(max_examples=100, deadline=None)
def test_mug_stable_and_equal_for_equal_nouns(noun) -> None:
    other = _copy(noun)
    assert other is not noun or not isinstance(noun, tuple)
    assert mug(noun) == mug(noun) == mug(other)
    assert jam(other) == jam(noun)
    assert 0 < mug(noun) < (1 << 31)


def _copy(noun):
    """Deep copy with no shared objects (recursion is fine: these nouns are small)."""
    if isinstance(noun, tuple):
        return (_copy(noun[0]), _copy(noun[1]))
    return int(str(noun))


@given(_nouns(), _nouns())
@settings(max_examples=200, deadline=None)
def test_equal_agrees_with_jam(a, b) -> None:
    assert equal(a, b) == (jam(a) == jam(b))
