"""The reference ship's remote-scry ("fine") namespace: what it answers to the peek vere makes for a fine
request (seguro.urbit.fine.peek_sam), in the shape vere's Arvo gives, so that a king can build a real
answer datagram from it (seguro.urbit.fine.answer).

The peek is `[gang %.n %once %ax desk /fine/hunk/(scot %ud lop)/(scot %ud len)/<path>]`; Arvo's ames
answers `[~ mark meows]` with the message's fragments lop, lop+1, ... (at most len of them; fragments are
numbered from 1). Like Arvo's, the message is the jam of a cage `[mark noun]` cut into 1024-byte
fragments, and each meow is the atom of `64^sig 4^num dat` (signature, fragment count, data).

What is bound: a remote-scry namespace never changes what a path holds, so the value at a path is a pure
function of the ship and the path: `[%noun [who path]]` (who: the kernel's ship name). Two hooks, like the
reference ship's packet hooks: a path whose first segment is `none` is unbound (the peek gives ~), one
whose first segment is `crash` crashes the scry (%peek %bail).

The signature is NOT a signature: Arvo signs each fragment with the ship's networking key (ed25519); the
reference ship has no keys, so its "signature" is a 64-byte hash of the path, fragment number and data.
A requester that checks signatures rejects it; it is enough to build and compare datagrams.

Mesa (directed messaging) peeks, `[gang %.n %beam %ax [[our %$ [%ud 1]] sky]]` with sky
/mess/<rift>/pact/31/etch/data/0/<path> (seguro.urbit.ames_filter.mesa_peek_sam), get the message bound
at <path> as one jumbo frame, in the shape vere reads (seguro.urbit.mesa_answer.frame_of):
`[~ %noun [pac pas pof]]`: `pac` the page packet of the whole message (name: our ship, the rift, bloq
31, fragment 0, the path; data: the message), `pas` one 64-byte LSS hash pair per 1 KiB leaf (zero where
the leaf has none), `pof` the message's LSS proof when it has more than one leaf (seguro.urbit.lss,
real BLAKE3 hashes). Same message and hooks as fine, plus `/big/<n>/...`: the message repeated to n
bytes (a last zero byte made 1: `pac` is an atom, which cannot end in zero bytes), for multi-leaf
tests. The page's signature is NOT one either (Arvo signs the LSS root with the networking key): it is
a 64-byte BLAKE2b hash of the path and the root. The reference ship keeps no rift: it answers at any
rift (Arvo answers ~ at another rift than its own), and checks `our` only when its name is a galaxy's
(it has no @p parser for others).
"""

from __future__ import annotations

import hashlib
import re

from seguro.urbit import lss
from seguro.urbit.ames import galaxy_name
from seguro.urbit.fine import FINE_FRAG, SIG_SIZE
from seguro.urbit.mesa import AUTH_SIGN, Name
from seguro.urbit.mesa_answer import etch_page
from seguro.urbit.noun import Noun, cord, from_list, jam, to_list, uncord
from seguro.urbit.ship.kernel import Crash, Kernel, goof

HUNK = [cord("fine"), cord("hunk")]
JUMBO = [cord(s) for s in ("pact", "31", "etch", "data", "0")]  # after /mess/<rift>
_UD = re.compile(r"\d{1,3}(?:\.\d{3})*")


def fine_path(sam: Noun) -> list[Noun] | None:
    """The path after /fine/hunk of a fine peek's sam `[gang %.n %once %ax desk path]`; None if not one."""
    try:
        _gang, (flag, (once, (care, (_desk, path)))) = sam  # type: ignore[misc]
        items = to_list(path)
    except (TypeError, ValueError):
        return None
    if (flag, once, care) != (1, cord("once"), cord("ax")) or items[:2] != HUNK:
        return None
    return items[2:]


def peek_fine(kernel: Kernel, sam: Noun) -> Noun | None:
    """The unit Arvo gives for a fine peek (None: `sam` is not one). Crash: the scry crashed."""
    rest = fine_path(sam)
    if rest is None:
        return None
    if len(rest) < 3:  # /fine/hunk/lop/len and a path of one segment at least
        raise Crash(goof("exit", "fine: no path"))
    lop, length, key = _slav_ud(rest[0]), _slav_ud(rest[1]), rest[2:]
    if key[0] == cord("none"):
        return 0
    if key[0] == cord("crash"):
        raise Crash(goof("exit", "fine: the scry asked to crash"))
    return (0, (cord("noun"), from_list(meows(message(kernel, key), lop, length, key))))


def message(kernel: Kernel, key: list[Noun]) -> bytes:
    """The message bound at `key`: the jam of the cage `[%noun [who path]]`."""
    return jam((cord("noun"), (cord(kernel.who), from_list(key))))


def meows(mes: bytes, lop: int, length: int, key: list[Noun]) -> list[int]:
    """Fragments lop .. lop+length-1 of `mes` (those that exist), as Arvo's meows."""
    num = max(1, -(-len(mes) // FINE_FRAG))
    found = []
    for fra in range(max(lop, 1), min(num, lop + length - 1) + 1):
        dat = mes[(fra - 1) * FINE_FRAG : fra * FINE_FRAG]
        sig = hashlib.blake2b(jam((from_list(key), fra)) + dat, digest_size=SIG_SIZE).digest()
        found.append(int.from_bytes(sig + num.to_bytes(4, "little") + dat, "little"))
    return found


def _slav_ud(atom: Noun) -> int:
    """`(slav %ud atom)`: crashes unless it is @ud text ("4.096")."""
    try:
        text = uncord(atom) if isinstance(atom, int) else ""
    except ValueError:
        text = ""
    if not _UD.fullmatch(text):
        raise Crash(goof("exit", f"fine: bad @ud {atom!r}"))
    return int(text.replace(".", ""))


def peek_mesa(kernel: Kernel, sam: Noun) -> Noun | None:
    """The unit Arvo gives for a mesa jumbo peek (None: `sam` is not one). Crash: the scry crashed."""
    try:
        _gang, (flag, (beam, (care, ((our, (desk, case)), sky)))) = sam  # type: ignore[misc]
        items = to_list(sky)
    except (TypeError, ValueError):
        return None
    if (flag, beam, care, desk, case) != (1, cord("beam"), cord("ax"), 0, (cord("ud"), 1)):
        return None
    if items[:1] != [cord("mess")] or items[2:7] != JUMBO:
        return None
    rif, key = _slav_ud(items[1]), items[7:]
    name = kernel.who.lstrip("~")
    if not isinstance(our, int) or (len(name) == 3 and (our > 255 or galaxy_name(our) != name)):
        return 0  # not our namespace
    if not key or key[0] == cord("none"):
        return 0
    if key[0] == cord("crash"):
        raise Crash(goof("exit", "mesa: the scry asked to crash"))
    mes = message(kernel, key)
    if key[0] == cord("big") and len(key) > 1:
        size = _slav_ud(key[1])
        mes = (mes * (size // len(mes) + 1))[:size]
        mes = mes[:-1] + b"\1" if mes.endswith(b"\0") else mes  # `pac` is an atom: no trailing zeros
    return (0, (cord("noun"), jumbo_frame(our, rif, key, mes)))


def jumbo_frame(our: int, rif: int, key: list[Noun], mes: bytes) -> Noun:
    """`[pac pas pof]` for message `mes` bound at path `key` (see the module's docstring)."""
    path = b"/".join(seg.to_bytes((seg.bit_length() + 7) // 8, "little") for seg in key)  # type: ignore[union-attr]
    proof, pairs = lss.build(mes)
    root = lss.proof_root(proof) if len(pairs) > 1 else lss.subtree_root(mes)
    sig = hashlib.blake2b(path + root, digest_size=SIG_SIZE).digest()
    pac = etch_page(Name(our, rif, 31, False, False, 0, path), len(mes), (AUTH_SIGN, sig), mes, cap=None)
    pof = int.from_bytes(b"".join(proof), "little") if len(pairs) > 1 else 0
    return (int.from_bytes(pac, "little"), (from_list(int.from_bytes(p, "little") for p in pairs), pof))
