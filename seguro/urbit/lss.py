"""LSS, the Merkle tree over a message's 1 KiB leaves that mesa proves pages with, as vere builds it
(pkg/vere/io/lss.c, the same in vere-v3.5 and vere-v4.5), over BLAKE3's compression function.

A leaf's hash is the BLAKE3 chaining value of the leaf as chunk number i (lss.c, _leaf_hash: the
chunk's output compressed without the ROOT flag); a parent's is BLAKE3's parent chaining value
(_parent_hash: IV, the two hashes as one 64-byte block, counter 0, flag PARENT). The tree has BLAKE3's
shape, so the root with the ROOT flag set on its last compression is the message's BLAKE3 hash; the
tests check ours against the `blake3` package that way. No package exposes the non-root chaining
values, hence this small pure-Python compression function: it runs on the reference ship, never on a
node's answer path (vere copies Arvo's proof and pairs; it hashes nothing to answer a peek).

The builder (lss_builder_ingest / _lss_builder_merge / lss_builder_finalize) yields the message's
proof, `proof_size(leaves)` hashes (the left spine: leaf 0, leaf 1, then the right sibling at each
height), and a pair of sibling hashes for each leaf i where `expect_pair(leaves, i)` (lss_builder_pair).
"""

from __future__ import annotations

LEAF = 1024
CHUNK_START, CHUNK_END, PARENT, ROOT = 1, 2, 4, 8
IV = (0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19)
PERMUTATION = (2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8)
MASK = 0xFFFFFFFF
ZERO_PAIR = bytes(64)


def _g(s: list[int], a: int, b: int, c: int, d: int, x: int, y: int) -> None:
    s[a] = (s[a] + s[b] + x) & MASK
    s[d] = ((s[d] ^ s[a]) >> 16 | (s[d] ^ s[a]) << 16) & MASK
    s[c] = (s[c] + s[d]) & MASK
    s[b] = ((s[b] ^ s[c]) >> 12 | (s[b] ^ s[c]) << 20) & MASK
    s[a] = (s[a] + s[b] + y) & MASK
    s[d] = ((s[d] ^ s[a]) >> 8 | (s[d] ^ s[a]) << 24) & MASK
    s[c] = (s[c] + s[d]) & MASK
    s[b] = ((s[b] ^ s[c]) >> 7 | (s[b] ^ s[c]) << 25) & MASK


def compress(cv: bytes, block: bytes, block_len: int, counter: int, flags: int) -> bytes:
    """BLAKE3's compression function; the first 32 bytes of its 64 are the chaining value
    (urcrypt_blake3_compress, as lss.c calls it)."""
    h = [int.from_bytes(cv[i : i + 4], "little") for i in range(0, 32, 4)]
    m = [int.from_bytes(block[i : i + 4], "little") for i in range(0, 64, 4)]
    s = h + list(IV[:4]) + [counter & MASK, counter >> 32 & MASK, block_len, flags]
    for round_ in range(7):
        _g(s, 0, 4, 8, 12, m[0], m[1])
        _g(s, 1, 5, 9, 13, m[2], m[3])
        _g(s, 2, 6, 10, 14, m[4], m[5])
        _g(s, 3, 7, 11, 15, m[6], m[7])
        _g(s, 0, 5, 10, 15, m[8], m[9])
        _g(s, 1, 6, 11, 12, m[10], m[11])
        _g(s, 2, 7, 8, 13, m[12], m[13])
        _g(s, 3, 4, 9, 14, m[14], m[15])
        if round_ < 6:
            m = [m[i] for i in PERMUTATION]
    out = [s[i] ^ s[i + 8] for i in range(8)] + [s[i + 8] ^ h[i] for i in range(8)]
    return b"".join(word.to_bytes(4, "little") for word in out)


_IV_BYTES = b"".join(word.to_bytes(4, "little") for word in IV)


def leaf_hash(leaf: bytes, counter: int, root: bool = False) -> bytes:
    """lss.c, _leaf_hash: the chaining value of `leaf` (at most 1 KiB) as chunk `counter`."""
    if len(leaf) > LEAF:
        raise ValueError(f"a leaf holds at most {LEAF} bytes, not {len(leaf)}")
    blocks = [leaf[i : i + 64] for i in range(0, len(leaf), 64)] or [b""]
    cv = _IV_BYTES
    for n, block in enumerate(blocks):
        flags = (CHUNK_START if n == 0 else 0) | (CHUNK_END if n == len(blocks) - 1 else 0)
        flags |= ROOT if root and n == len(blocks) - 1 else 0
        cv = compress(cv, block.ljust(64, b"\0"), len(block), counter, flags)[:32]
    return cv


def parent_hash(left: bytes, right: bytes, root: bool = False) -> bytes:
    """lss.c, _parent_hash."""
    return compress(_IV_BYTES, left + right, 64, 0, PARENT | (ROOT if root else 0))[:32]


def num_leaves(size: int) -> int:
    return (size + LEAF - 1) // LEAF


def proof_size(leaves: int) -> int:
    """lss.c, lss_proof_size: 1 + c3_bits_word(leaves - 1) (vere's u32 arithmetic)."""
    return 1 + ((leaves - 1) & MASK).bit_length()


def expect_pair(leaves: int, i: int) -> bool:
    """lss.c, _lss_expect_pair: leaf i > 0 carries a pair when i + 2^(1 + trailing zeros of i) < leaves."""
    return i != 0 and i + (1 << (1 + ((i & -i).bit_length() - 1))) < leaves


def build(data: bytes) -> tuple[list[bytes], list[bytes]]:
    """(proof, pairs) of `data` as lss_builder_ingest over each leaf and lss_builder_finalize leave
    them; pairs[i] is the 64 bytes left||right of leaf i, or 64 zero bytes where lss_builder_pair gives
    NULL. A message of one leaf has a one-hash proof whose hash the builder never writes (zero)."""
    leaves = max(1, num_leaves(len(data)))
    proof, pairs, trees = [bytes(32)] * proof_size(leaves), [ZERO_PAIR] * leaves, [bytes(32)] * 32
    counter = 0

    def merge(height: int, left: bytes, right: bytes) -> None:  # _lss_builder_merge
        if counter >> (height + 1):
            pairs[(counter & ~((1 << (height + 1)) - 1)) - (1 << height)] = left + right
        else:
            if height == 0:
                proof[0] = left
            proof[height + 1] = right

    for counter in range(leaves):  # noqa: B007 (merge reads it)
        h, height = leaf_hash(data[counter * LEAF : (counter + 1) * LEAF], counter), 0
        while counter & (1 << height):
            merge(height, trees[height], h)
            h, height = parent_hash(trees[height], h), height + 1
        trees[height] = h
    counter = leaves
    height = (counter & -counter).bit_length() - 1
    h = trees[height]
    for up in range(height + 1, 32):
        if counter & (1 << up):
            merge(up, trees[up], h)
            h = parent_hash(trees[up], h)
    return proof, [pair if expect_pair(leaves, i) else ZERO_PAIR for i, pair in enumerate(pairs)]


def subtree_root(data: bytes, counter: int = 0, root: bool = False) -> bytes:
    """lss.c, _subtree_root: the hash of `data` as the subtree whose first leaf is `counter`; with
    `root`, the top compression has the ROOT flag (then, from counter 0, it is BLAKE3's hash)."""
    if len(data) <= LEAF:
        return leaf_hash(data, counter, root)
    mid = 1 << ((num_leaves(len(data)) - 1).bit_length() - 1)
    left = subtree_root(data[: mid * LEAF], counter)
    right = subtree_root(data[mid * LEAF :], counter + mid)
    return parent_hash(left, right, root)


def proof_root(proof: list[bytes]) -> bytes:
    """lss.c, lss_root: the root a proof commits to."""
    root = proof[0]
    for h in proof[1:]:
        root = parent_hash(root, h)
    return root
