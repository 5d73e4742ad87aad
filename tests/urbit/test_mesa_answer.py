"""Mesa peeks answered as vere answers them (seguro.urbit.mesa_answer), LSS as vere builds it
(seguro.urbit.lss), and the reference ship's jumbo frames. Packets are built byte by byte from the layouts
in vere-v4.5's pkg/vere/io/mesa/pact.c; each fixture names the function whose layout it follows."""

from __future__ import annotations

import blake3
import pytest

from seguro.urbit import lss, mesa
from seguro.urbit import mesa_answer as ma
from seguro.urbit.ames_filter import classify
from seguro.urbit.noun import Noun, cord, from_list
from seguro.urbit.ship import scry
from seguro.urbit.ship.kernel import Crash, Kernel
from tests.urbit.test_ames_filter import mesa_name, mesa_packet

OUR = 0x0100  # a star: 2-byte ship, rank 0
SIG = bytes(range(64))
MAC = bytes(range(100, 116))


def nit_name(her: int, path: bytes) -> bytes:
    """_mesa_etch_name of an init name: meta 0b0001_0000 (rank 0, rift 1 byte, nit), ship, rift 13, bloq 3,
    no fragment, path length u16 LE, path."""
    return bytes([0x10]) + her.to_bytes(2, "little") + bytes([13, 3]) + len(path).to_bytes(2, "little") + path


def data_sig(tob: int, fragment: bytes, sig: bytes = SIG) -> bytes:
    """_mesa_etch_data with AUTH_SIGN: meta = bot | aut 1 << 2 | auv 1 << 3 | men << 6, tob (1 << bot bytes),
    64 signature bytes, fragment length (men bytes, 3 when it needs a byte count), fragment."""
    bot = 0 if tob <= 0xFF else 1
    men = 1 if len(fragment) <= 0xFF else 2
    head = bytes([bot | 1 << 2 | 1 << 3 | men << 6]) + tob.to_bytes(1 << bot, "little") + sig
    return head + len(fragment).to_bytes(men, "little") + fragment


def data_pair(tob: int, fragment: bytes, pair: bytes | None) -> bytes:
    """_mesa_etch_data with AUTH_PAIR (aut 0, auv 0, two hashes) or AUTH_NONE (aut 0, auv 1, nothing);
    tob in 2 bytes (bot 1), fragment length in 2 bytes (men 2)."""
    meta = 1 | (0 if pair else 1 << 3) | 2 << 6
    size = len(fragment).to_bytes(2, "little")
    return bytes([meta]) + tob.to_bytes(2, "little") + (pair or b"") + size + fragment


def jumbo(path: bytes, mes: bytes, pairs: list[bytes] | None = None, proof: bytes = b"") -> Noun:
    """What vere reads at u3r_at(7) of the jumbo peek's result (_mesa_page_scry_jumbo_cb): `[~ mark [pac pas
    pof]]`; pac is a page (_mesa_etch_page_pact: name with bloq 31, fragment 0, then the data)."""
    name = bytes([0]) + OUR.to_bytes(2, "little") + bytes([13, 31, 0]) + len(path).to_bytes(2, "little")
    name += path
    pac = mesa_packet(mesa.PAGE, name + (data_sig(len(mes), mes) if len(mes) < 256 else _data_sig2(mes)))
    pas = from_list(int.from_bytes(p, "little") for p in (pairs or [bytes(64)] * mesa.num_leaves(len(mes))))
    return (0, (cord("noun"), (int.from_bytes(pac, "little"), (pas, int.from_bytes(proof, "little")))))


def _data_sig2(mes: bytes) -> bytes:
    """_mesa_etch_data, AUTH_SIGN, tob in 2 bytes (bot 1), a jumbo fragment length in 2 bytes (men 2)."""
    return bytes([1 | 1 << 2 | 1 << 3 | 2 << 6]) + len(mes).to_bytes(2, "little") + SIG + \
        len(mes).to_bytes(2, "little") + mes  # fmt: skip


def peek(path: bytes, fra: int = 0, nit: bool = False) -> mesa.Pact:
    name = nit_name(OUR, path) if nit else mesa_name(OUR, path, fra)
    verdict = classify(mesa_packet(mesa.PEEK, name), OUR)
    assert verdict.action == "scry" and isinstance(verdict.request, mesa.Pact)
    return verdict.request


# ---------------------------------------------------------------- answers (mesa.c, pact.c)


def test_a_single_leaf_message_is_one_page_with_its_signature() -> None:
    """_mesa_send_piece -> _mesa_send_leaf(0): the request's name (re-etched), the message's auth."""
    result = jumbo(b"ax/stuff", b"hello")
    want = mesa_packet(mesa.PAGE, mesa_name(OUR, b"ax/stuff", 0) + data_sig(5, b"hello"))
    assert ma.answer(peek(b"ax/stuff"), result) == want
    init = mesa_packet(mesa.PAGE, nit_name(OUR, b"ax/stuff") + data_sig(5, b"hello"))
    assert ma.answer(peek(b"ax/stuff", nit=True), result) == init  # pro_w is 1: the one leaf


def test_a_multi_leaf_message_answers_the_proof_then_leaves_with_pairs() -> None:
    mes = bytes(i % 251 for i in range(5 * 1024 + 5))  # six leaves
    proof, pairs = lss.build(mes)
    assert [i for i, p in enumerate(pairs) if p != lss.ZERO_PAIR] == [1, 3]  # _lss_expect_pair(6, i)
    result = jumbo(b"big", mes, pairs, b"".join(proof))
    # init: the proof as data (lss_proof_size(6) = 1 + c3_bits_word(5) = 4 hashes), the message's auth
    init = ma.answer(peek(b"big", nit=True), result)
    proof_page = nit_name(OUR, b"big") + _data_sig_tob2(len(mes), b"".join(proof))
    assert init == mesa_packet(mesa.PAGE, proof_page) and len(proof) == 4
    # fragment 0: leaf 0 with the signature; 3: leaf 3 with its pair; 2: no pair, no auth
    assert ma.answer(peek(b"big", 0), result) == mesa_packet(
        mesa.PAGE, mesa_name(OUR, b"big", 0) + _data_sig_tob2(len(mes), mes[:1024]))
    assert ma.answer(peek(b"big", 3), result) == mesa_packet(
        mesa.PAGE, mesa_name(OUR, b"big", 3) + data_pair(len(mes), mes[3072:4096], pairs[3]))
    assert ma.answer(peek(b"big", 2), result) == mesa_packet(
        mesa.PAGE, mesa_name(OUR, b"big", 2) + data_pair(len(mes), mes[2048:3072], None))
    assert ma.answer(peek(b"big", 5), result) == mesa_packet(
        mesa.PAGE, mesa_name(OUR, b"big", 5) + bytes([1 | 1 << 3 | 1 << 6]) + len(mes).to_bytes(2, "little")
        + b"\x05" + mes[5120:])  # the last leaf: 5 bytes, a 1-byte length (men 1)
    with pytest.raises(ma.Unanswered, match="no fragment"):
        ma.answer(peek(b"big", 6), result)  # past the frame: vere would read past its buffer


def _data_sig_tob2(tob: int, fragment: bytes) -> bytes:
    """_mesa_etch_data, AUTH_SIGN, tob in 2 bytes (bot 1); the fragment's length in met3 bytes."""
    men = (len(fragment).bit_length() + 7) // 8
    return bytes([1 | 1 << 2 | 1 << 3 | men << 6]) + tob.to_bytes(2, "little") + SIG + \
        len(fragment).to_bytes(men, "little") + fragment  # fmt: skip


def test_the_answer_re_etches_the_requests_name() -> None:
    """_mesa_etch_name picks the ship's width from its rank and the fragment's from its value, whatever
    widths the request used: an 8-byte ship and a 4-byte fragment come back as 2 and 1 bytes."""
    wide = bytes([2 | 2 << 6]) + OUR.to_bytes(8, "little") + bytes([13, 3]) + (0).to_bytes(4, "little")
    request = classify(mesa_packet(mesa.PEEK, wide + b"\x01\x00x"), OUR).request
    assert isinstance(request, mesa.Pact)
    assert ma.answer(request, jumbo(b"x", b"hi")) == mesa_packet(
        mesa.PAGE, mesa_name(OUR, b"x", 0) + data_sig(2, b"hi"))


def test_what_vere_would_not_send() -> None:
    good = jumbo(b"x", b"hi")
    _, (mark, (pac, rest)) = good  # type: ignore[misc]
    for result in (0, (0, 0), (0, (mark, 5))):
        with pytest.raises(ma.Unanswered, match="empty|misshapen"):
            ma.answer(peek(b"x"), result)
    peek_pac = int.from_bytes(mesa_packet(mesa.PEEK, mesa_name(OUR, b"x")), "little")
    two_pairs = (from_list([0, 0]), 0)  # more pairs than the frame has leaves
    for bad in ((5, rest), (peek_pac, rest), (pac, two_pairs), (pac ^ 1 << 64, rest), (pac, ((1, 2), 0))):
        with pytest.raises(ma.Unanswered, match="misshapen"):
            ma.answer(peek(b"x"), (0, (mark, bad)))
    with pytest.raises(ma.Unanswered, match="too large"):  # vere's etcher would assert
        ma.answer(peek(b"y" * 400), jumbo(b"y" * 400, b"\1" * 1024))


def test_etching_auths_and_long_fragments() -> None:
    """_mesa_etch_data: an hmac is 16 bytes (aut 1, auv 0); a length of 3 bytes or more takes men 3 and a
    byte count; sifting it back gives what was etched."""
    name = mesa.Name(OUR, 13, 31, False, False, 0, b"p")
    hmac = ma.etch_page(name, 2, (mesa.AUTH_HMAC, MAC), b"hi")
    assert hmac[8 + 9 :][:4] == bytes([0 | 1 << 2 | 0 << 3 | 1 << 6, 2]) + MAC[:2]
    assert mesa.sift_pact(hmac).auth == (mesa.AUTH_HMAC, MAC)
    big = ma.etch_page(name, 70_000, (mesa.AUTH_SIGN, SIG), bytes(70_000), cap=None)
    data = big[8 + 9 :]  # after the head and the name (meta, ship 2, rift, bloq, fragment, length 2, "p")
    assert data[0] == 2 | 1 << 2 | 1 << 3 | 3 << 6  # tob 4 bytes, signed, men 3
    assert data[5 + 64 : 5 + 64 + 4] == b"\x03" + (70_000).to_bytes(3, "little")  # a byte count, the length
    assert mesa.sift_pact(big).data == bytes(70_000)
    with pytest.raises(ma.Unanswered, match="too large"):
        ma.etch_page(name, 70_000, (mesa.AUTH_SIGN, SIG), bytes(70_000))


# ---------------------------------------------------------------- LSS (lss.c)


@pytest.mark.parametrize("size", [0, 1, 64, 65, 1024, 1025, 3000, 8 * 1024 + 1])
def test_lss_hashes_are_blake3s(size: int) -> None:
    """The root of the tree, with BLAKE3's ROOT flag on the top compression, is BLAKE3's hash."""
    data = bytes(i * 7 % 256 for i in range(size))
    assert lss.subtree_root(data, root=True) == blake3.blake3(data).digest()


def test_lss_manual_8_as_veres_test_builds_it() -> None:
    """lss.c, _test_lss_manual_verify_8: 7 KiB + 1 of zeros; pairs at 1, 2, 3 and 5; the proof is leaf 0,
    leaf 1, parent(2, 3) and the parent of pair 2."""
    data = bytes(1024 * 7 + 1)
    h = [lss.leaf_hash(data[i * 1024 : (i + 1) * 1024], i) for i in range(8)]
    p3, p5 = (h[4], h[5]), (h[6], h[7])
    pair2 = (lss.parent_hash(*p3), lss.parent_hash(*p5))
    proof, pairs = lss.build(data)
    assert proof == [h[0], h[1], lss.parent_hash(h[2], h[3]), lss.parent_hash(*pair2)]
    assert pairs == [bytes(64), h[2] + h[3], b"".join(pair2), b"".join(p3), bytes(64), b"".join(p5),
                     bytes(64), bytes(64)]  # fmt: skip


def verify(data: bytes, proof: list[bytes], pairs: list[bytes]) -> bool:
    """lss.c, lss_verifier_init + lss_verifier_ingest (steps 0) over every leaf, as its tests do."""
    leaves = lss.num_leaves(len(data))
    table = [[proof[0], b""]] + [[b"", b""] for _ in range(leaves.bit_length())]
    for i in range(1, len(proof)):
        table[i - 1][1] = proof[i]

    def check(i: int, height: int, h: bytes) -> bool:  # _lss_verifier_check_hash
        odd = (1 << (leaves - 1).bit_length()) - leaves
        mask = (1 << (i ^ (leaves - 1)).bit_length()) - 1
        shifted = ~((odd & ~mask) >> height) & 0xFFFFFFFF
        height += (shifted & -shifted).bit_length() - 1
        return table[height][(i >> height) & 1] == h

    for i in range(leaves):
        if not check(i, 0, lss.leaf_hash(data[i * 1024 : (i + 1) * 1024], i)):
            return False
        pair = pairs[i] if pairs[i] != lss.ZERO_PAIR else None
        if (pair is not None) != lss.expect_pair(leaves, i):
            return False
        if pair is not None:
            height = (i & -i).bit_length() - 1
            if not check(i + (1 << height), height + 1, lss.parent_hash(pair[:32], pair[32:])):
                return False
            table[height] = [pair[:32], pair[32:]]
    return True


@pytest.mark.parametrize("size", [2 * 1024, 2 * 1024 + 2, 3 * 1024, 5 * 1024 + 5, 17 * 1024 + 512, 64 * 1024])
def test_lss_builds_what_veres_verifier_accepts(size: int) -> None:
    """lss.c's main(): _test_lss_build_verify over these sizes (its data: byte i is i mod 256)."""
    data = bytes(i % 256 for i in range(size))
    proof, pairs = lss.build(data)
    assert verify(data, proof, pairs)
    assert lss.proof_root(proof) == lss.subtree_root(data)
    broken = bytearray(data)
    broken[-1] ^= 1
    assert not verify(bytes(broken), proof, pairs)


# ---------------------------------------------------------------- the reference ship's frames


def test_the_reference_ship_answers_jumbo_peeks_with_real_frames() -> None:
    kernel = Kernel(who="~zod")
    verdict = classify(mesa_packet(mesa.PEEK, nit_name(0, b"big/5.000")), 0)
    frame = ma.frame_of(scry.peek_mesa(kernel, verdict.sam))
    mes = scry.message(kernel, [cord("big"), cord("5.000")])
    assert frame.data == (mes * 300)[:5000] and frame.tob == 5000 and frame.auth[0] == mesa.AUTH_SIGN
    proof, pairs = lss.build(frame.data)
    assert frame.proof == b"".join(proof) and frame.pairs == pairs and verify(frame.data, proof, pairs)
    small = classify(mesa_packet(mesa.PEEK, mesa_name(0, b"c/x/1/kids")), 0)
    answer = mesa.sift_pact(ma.answer(small.request, scry.peek_mesa(kernel, small.sam)))  # type: ignore[arg-type]
    assert answer.data == scry.message(kernel, [cord(s) for s in ("c", "x", "1", "kids")])
    assert scry.peek_mesa(Kernel(who="~nec"), small.sam) == 0  # ~zod's namespace, not ~nec's
    assert scry.peek_mesa(kernel, classify(mesa_packet(mesa.PEEK, mesa_name(0, b"none")), 0).sam) == 0
    with pytest.raises(Crash):
        scry.peek_mesa(kernel, classify(mesa_packet(mesa.PEEK, mesa_name(0, b"crash")), 0).sam)
    assert scry.peek_mesa(kernel, (0, from_list([cord("eve")]))) is None  # not a mesa peek
