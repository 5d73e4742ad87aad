"""Urbit nouns: jam/cue serialisation and mug hashing, bit-exact with vere.

A noun is an atom (a Python ``int`` >= 0) or a cell (a 2-tuple ``(head, tail)``). Event-log records hold
jammed nouns, so every byte here must match vere (pkg/ur/serial.c, pkg/noun/serial.c, pkg/noun/retrieve.c).

Nothing recurses: Python's own tuple ``==``/``hash`` recurse and die on a 100,000-deep list, so equality and
hashing of sub-nouns go through value numbers (each distinct cell maps to an integer keyed by its children's
numbers) memoised by object identity, which also keeps nouns with shared subtrees (DAGs) linear.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import TypeAlias, TypeVar

from seguro.invariant import require

T = TypeVar("T")

try:  # the C extension is ~100x faster; the pure-Python fallback is kept bit-identical and tested
    from mmh3 import hash as _mmh3_hash
except ImportError:  # pragma: no cover - exercised only where mmh3 is missing
    _mmh3_hash = None

Noun: TypeAlias = int | tuple  # cells are 2-tuples of nouns; a runtime type, so isinstance and | work

_FLUSH_BITS = 4096  # jam: move whole bytes out of the accumulator once it holds this many bits
_WINDOW_BYTES = 96  # cue: bytes of input held as one small int for cheap shifts
_WINDOW_SLACK_BITS = 192  # cue: refill when fewer bits than this remain ahead (covers tag + mat header)
_MAX_LEN_BITS = 63  # a mat length-of-length of 64 or more cannot describe an atom vere could hold
_MASK64 = (1 << 64) - 1


# ---------------------------------------------------------------- atoms and small helpers


def _bad_atom(value: object) -> int:
    """Normalise an int subclass to int, reject anything that is not a natural number."""
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"noun atoms are natural numbers, got {value}")
        return int(value)
    raise TypeError(f"a noun is an int >= 0 or a 2-tuple, got {type(value).__name__}: {value!r:.60}")


def _cell_parts(cell: tuple) -> tuple[Noun, Noun]:
    """Unpack a cell, explaining a wrong-length tuple instead of a bare unpack error."""
    if len(cell) != 2:
        raise ValueError(f"a noun cell is a 2-tuple, got a {len(cell)}-tuple")
    return cell[0], cell[1]


def atom_bytes(atom: int) -> bytes:
    """Little-endian bytes of an atom without trailing zeros (0 is b"")."""
    if atom.__class__ is not int or atom < 0:
        atom = _bad_atom(atom)
    return atom.to_bytes((atom.bit_length() + 7) >> 3, "little")


def atom_from_bytes(data: bytes) -> int:
    """The atom whose little-endian bytes are `data` (trailing zeros are insignificant)."""
    return int.from_bytes(data, "little")


def cord(text: str) -> int:
    """A Hoon @t: the UTF-8 bytes of `text`, first byte least significant."""
    return int.from_bytes(text.encode("utf-8"), "little")


def uncord(atom: int) -> str:
    """Inverse of `cord`; raises ValueError if the atom's bytes are not UTF-8."""
    return atom_bytes(atom).decode("utf-8")


def term(text: str) -> int:
    """A Hoon @tas (%tag): encoded exactly as a cord; named separately for readability at call sites."""
    return cord(text)


def from_list(items: Iterable[Noun]) -> Noun:
    """A Hoon list: `[a b c]` -> (a, (b, (c, 0))), built without recursion."""
    out: Noun = 0
    for item in reversed(list(items)):
        out = (item, out)
    return out


def to_list(noun: Noun) -> list[Noun]:
    """Elements of a null-terminated list noun; ValueError if it does not end in 0."""
    out: list[Noun] = []
    while noun.__class__ is tuple:
        head, noun = _cell_parts(noun)
        out.append(head)
    if noun != 0:
        raise ValueError(f"not a null-terminated list: ends in atom {noun!r:.40} after {len(out)} items")
    return out


def tape(text: str) -> Noun:
    """A Hoon tape: a list of the UTF-8 bytes of `text`."""
    return from_list(text.encode("utf-8"))


def untape(noun: Noun) -> str:
    """Inverse of `tape`."""
    items = to_list(noun)
    if any(item.__class__ is not int or not 0 <= item < 256 for item in items):
        raise ValueError("a tape holds only byte atoms")
    return bytes(items).decode("utf-8")


# ---------------------------------------------------------------- jam


def _mat(atom: int) -> tuple[int, int]:
    """vere's mat: (bits, width) of the length-prefixed encoding of `atom`, LSB first."""
    if atom == 0:
        return 1, 1
    b = atom.bit_length()
    c = b.bit_length()
    return (1 << c) | ((b ^ (1 << (c - 1))) << (c + 1)) | (atom << (c << 1)), (c << 1) + b


def _fold_cells(root: tuple, leaf: Callable[[int], T], node: Callable[[T, T], T]) -> dict[int, T]:
    """id(cell) -> node(value of head, value of tail) for every cell under `root`, atoms mapped by `leaf`.

    Post-order over an explicit stack (peek, descend into an unvalued child, else value it): no recursion,
    and a subtree shared by identity is valued once.
    """
    values: dict[int, T] = {}
    stack = [root]
    push = stack.append
    while stack:
        cell = stack[-1]
        try:
            head, tail = cell
        except ValueError:
            _cell_parts(cell)
            raise
        if head.__class__ is tuple:
            hv = values.get(id(head))
            if hv is None:
                push(head)
                continue
        else:
            hv = leaf(head)
        if tail.__class__ is tuple:
            tv = values.get(id(tail))
            if tv is None:
                push(tail)
                continue
        else:
            tv = leaf(tail)
        stack.pop()
        values[id(cell)] = node(hv, tv)
    return values


def _cell_keys(root: tuple) -> dict[int, int]:
    """Value-number every cell: id(cell) -> negative int, equal for cells equal by value. Atoms are their
    own numbers (>= 0), so keys of cells and atoms never collide."""
    canon: dict[tuple[int, int], int] = {}

    def number(hk: int, tk: int) -> int:
        key = canon.get((hk, tk))
        if key is None:
            key = canon[(hk, tk)] = ~len(canon)
        return key

    return _fold_cells(root, _itself, number)


def _itself(atom: int) -> int:
    """An atom is its own value number; anything else is refused here, before it could alias a cell's
    (negative) number or an equal int (1.0) and be written as a back-reference it is not."""
    return atom if atom.__class__ is int and atom >= 0 else _bad_atom(atom)


def jam(noun: Noun) -> bytes:
    """Serialise a noun exactly as vere's jam: the jam atom as little-endian bytes, no trailing zeros.

    Pre-order walk; the first copy of each noun records its start bit. A repeated cell is always a
    back-reference; a repeated atom is one only if its bit length exceeds the offset's (vere's rule), and
    re-encoding an atom in full never moves its recorded offset.
    """
    keys = _cell_keys(noun) if noun.__class__ is tuple else {}
    seen: dict[int, int] = {}
    out = bytearray()
    acc = 0  # pending bits, LSB first
    nbits = 0  # how many of them are meaningful
    base = 0  # bits already moved to `out`
    stack = [noun]
    push = stack.append
    pop = stack.pop
    while stack:
        item = pop()
        pos = base + nbits
        if item.__class__ is tuple:
            key = keys[id(item)]
            prior = seen.get(key)
            if prior is None:
                seen[key] = pos
                acc |= 1 << nbits  # tag bits 1, 0
                nbits += 2
                push(item[1])
                push(item[0])
                continue
            bits, width = _mat(prior)
            acc |= (3 | (bits << 2)) << nbits
            nbits += 2 + width
        else:
            if item.__class__ is not int or item < 0:  # before the lookup: cell keys are negative
                item = _bad_atom(item)
            prior = seen.get(item)
            if prior is None:
                seen[item] = pos
            if prior is None or item.bit_length() <= prior.bit_length():
                bits, width = _mat(item)
                acc |= bits << (nbits + 1)
                nbits += 1 + width
            else:
                bits, width = _mat(prior)
                acc |= (3 | (bits << 2)) << nbits
                nbits += 2 + width
        if nbits > _FLUSH_BITS:
            whole = nbits & ~7
            out += (acc & ((1 << whole) - 1)).to_bytes(whole >> 3, "little")
            acc >>= whole
            nbits -= whole
            base += whole
    out += acc.to_bytes((nbits + 7) >> 3, "little")
    require(out[-1] != 0, "jam output must end in a 1 bit (every mat does)", bits=base + nbits)
    return bytes(out)


# ---------------------------------------------------------------- cue

_HEAD = object()  # marks a cell frame whose head is still being read


class _Window:
    """A bounded view of the input as one int, so bit reads shift a few dozen bytes, not the whole input."""

    __slots__ = ("data", "total", "win", "start", "end")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.total = len(data) << 3
        self.win = 0
        self.start = 0
        self.end = 0

    def load(self, pos: int) -> None:
        first = pos >> 3
        last = min(len(self.data), first + _WINDOW_BYTES)
        self.win = int.from_bytes(self.data[first:last], "little")
        self.start = first << 3
        self.end = last << 3

    def wide(self, pos: int, width: int) -> int:
        """`width` bits at `pos` (already bounds-checked), read straight from the input: for big atoms."""
        chunk = int.from_bytes(self.data[pos >> 3 : (pos + width + 7) >> 3], "little")
        return (chunk >> (pos & 7)) & ((1 << width) - 1)


def _rub(w: _Window, pos: int) -> tuple[int, int]:
    """vere's rub: decode a mat at `pos`; returns (atom, position after it)."""
    x = w.win >> (pos - w.start)
    if x & 1:
        return 0, pos + 1
    low = x & _MASK64
    if low == 0:
        if w.end >= w.total and x == 0:
            raise ValueError(f"cue: truncated input: length prefix at bit {pos} runs past the end")
        raise ValueError(f"cue: length prefix at bit {pos} has {_MAX_LEN_BITS + 1}+ zero bits (too long)")
    c = (low & -low).bit_length() - 1
    head_end = pos + (c << 1)
    if head_end > w.total:
        raise ValueError(f"cue: truncated input: length prefix at bit {pos} runs past the end")
    width = ((x >> (c + 1)) & ((1 << (c - 1)) - 1)) | (1 << (c - 1))
    if head_end + width > w.total:
        raise ValueError(
            f"cue: truncated input: atom at bit {pos} claims {width} bits, {w.total - head_end} remain"
        )
    if head_end + width <= w.end:
        return (w.win >> (head_end - w.start)) & ((1 << width) - 1), head_end + width
    return w.wide(head_end, width), head_end + width


def cue(data: bytes) -> Noun:
    """Deserialise a jam (vere's cue). ValueError on truncated or malformed input, never a hang.

    Every length is checked against the input before anything is allocated, back-references must
    point at the start of an earlier, completed noun, and bits after the noun must be zero.
    """
    data = bytes(data)
    if not data:
        raise ValueError("cue: empty input (no noun jams to the empty atom)")
    w = _Window(data)
    total = w.total
    done: dict[int, Noun] = {}  # start bit -> noun, for back-references
    frames: list[list] = []  # [start bit, head or _HEAD]
    pos = 0
    while True:
        if pos + _WINDOW_SLACK_BITS > w.end and w.end < total:
            w.load(pos)
        if pos >= total:
            raise ValueError(f"cue: truncated input: expected a noun at bit {pos}, input has {total} bits")
        tag = (w.win >> (pos - w.start)) & 3
        if not tag & 1:
            result, end = _rub(w, pos + 1)
            done[pos] = result
        elif tag == 1:
            if pos + 2 > total:
                raise ValueError(f"cue: truncated input: tag at bit {pos} is cut off")
            frames.append([pos, _HEAD])
            pos += 2
            continue
        else:
            if pos + 2 > total:
                raise ValueError(f"cue: truncated input: tag at bit {pos} is cut off")
            offset, end = _rub(w, pos + 2)
            result = done.get(offset, _HEAD)
            if result is _HEAD:
                raise ValueError(
                    f"cue: back-reference at bit {pos} to bit {offset}, where no earlier noun starts"
                )
        pos = end
        while frames:
            frame = frames[-1]
            if frame[1] is _HEAD:
                frame[1] = result
                break
            frames.pop()
            result = (frame[1], result)
            done[frame[0]] = result
        else:
            _check_tail(data, pos)
            return result


def _check_tail(data: bytes, pos: int) -> None:
    """Bits after the noun must be zero: anything else is corruption vere never writes."""
    first = pos >> 3
    dirty_byte = first < len(data) and (data[first] >> (pos & 7)) != 0
    if dirty_byte or data[first + 1 :].strip(b"\x00"):
        raise ValueError(f"cue: trailing non-zero bits after the noun ends at bit {pos}")


# ---------------------------------------------------------------- mug


def _murmur3_py(data: bytes, seed: int) -> int:
    """MurmurHash3_x86_32, the reference algorithm; used only if the mmh3 extension is unavailable."""
    c1, c2, m32 = 0xCC9E2D51, 0x1B873593, 0xFFFFFFFF
    h = seed & m32
    whole = len(data) & ~3
    for i in range(0, whole, 4):
        k = (int.from_bytes(data[i : i + 4], "little") * c1) & m32
        k = (((k << 15) | (k >> 17)) * c2) & m32
        h ^= k
        h = ((h << 13) | (h >> 19)) & m32
        h = (h * 5 + 0xE6546B64) & m32
    rest = data[whole:]
    if rest:
        k = (int.from_bytes(rest, "little") * c1) & m32
        h ^= (((k << 15) | (k >> 17)) * c2) & m32
    h ^= len(data)
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & m32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & m32
    return h ^ (h >> 16)


def _murmur3(data: bytes, seed: int) -> int:
    if _mmh3_hash is None:  # pragma: no cover
        return _murmur3_py(data, seed)
    return _mmh3_hash(data, seed, signed=False)


def _mug_fold(data: bytes, seed: int, fallback: int) -> int:
    """vere's 31-bit, never-zero folding of murmur3 with up to 8 seeds."""
    for attempt in range(8):
        h = _murmur3(data, seed + attempt)
        folded = (h >> 31) ^ (h & 0x7FFFFFFF)
        if folded:
            return folded
    return fallback


def _mug_of_atom(atom: int) -> int:
    return _mug_fold(atom.to_bytes((atom.bit_length() + 7) >> 3, "little"), 0xCAFEBABE, 0x7FFF)


_mug_small = lru_cache(maxsize=65536)(_mug_of_atom)  # small atoms recur (tags, lengths); big ones not kept


def mug_atom(atom: int) -> int:
    """Mug of an atom: murmur3 of its significant little-endian bytes, seed 0xcafebabe."""
    if atom.__class__ is not int or atom < 0:
        atom = _bad_atom(atom)
    return _mug_small(atom) if atom < 0x100000000 else _mug_of_atom(atom)


def mug_both(head_mug: int, tail_mug: int) -> int:
    """Mug of a cell from its children's mugs (vere's u3r_mug_both)."""
    data = head_mug.to_bytes(4, "little") + tail_mug.to_bytes((tail_mug.bit_length() + 7) >> 3, "little")
    return _mug_fold(data, 0xDEADBEEF, 0xFFFE)


def mug(noun: Noun) -> int:
    """vere's 31-bit mug of any noun, computed bottom-up without recursion."""
    if noun.__class__ is not tuple:
        return mug_atom(noun)
    return _fold_cells(noun, mug_atom, mug_both)[id(noun)]


# ---------------------------------------------------------------- equality


def equal(a: Noun, b: Noun) -> bool:
    """Structural equality without recursion; pairs already under comparison are not walked twice."""
    stack = [(a, b)]
    visited: set[tuple[int, int]] = set()
    while stack:
        x, y = stack.pop()
        if x is y:
            continue
        xt, yt = x.__class__ is tuple, y.__class__ is tuple
        if xt != yt:
            return False
        if not xt:
            if x != y:
                return False
            continue
        pair = (id(x), id(y))
        if pair in visited:  # an unequal descendant would already have returned False
            continue
        visited.add(pair)
        xh, xtl = _cell_parts(x)
        yh, ytl = _cell_parts(y)
        stack.append((xtl, ytl))
        stack.append((xh, yh))
    return True


def is_noun(value: object) -> bool:
    """True if `value` is a well-formed noun (ints >= 0 and 2-tuples all the way down)."""
    stack = [value]
    visited: set[int] = set()
    while stack:
        item = stack.pop()
        if item.__class__ is tuple:
            if len(item) != 2:
                return False
            if id(item) not in visited:
                visited.add(id(item))
                stack.extend(item)
        elif not isinstance(item, int) or item < 0:
            return False
    return True
