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
"""

from __future__ import annotations

import hashlib
import re

from seguro.urbit.fine import FINE_FRAG, SIG_SIZE
from seguro.urbit.noun import Noun, cord, from_list, jam, to_list, uncord
from seguro.urbit.ship.kernel import Crash, Kernel, goof

HUNK = [cord("fine"), cord("hunk")]
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
