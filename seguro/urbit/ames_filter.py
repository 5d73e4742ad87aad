"""Which inbound datagrams become events, decided as vere decides it, before Arvo sees them.

vere's UDP socket belongs to its mesa driver (pkg/vere/io/mesa.c, _mesa_recv_cb -> _mesa_hear, in
vere-v3.5 and vere-v4.5): a packet whose second word is mesa's cookie is a mesa packet; anything else
goes to the old ames driver (pkg/vere/io/ames.c, _ames_hear). Between them, a datagram is
  - a STUN request or the answer to our own STUN request (stun.c): answered or used by vere, no event;
  - an old Ames packet (ames.c): dropped if too short for a header, of another protocol version, of a
    bad mug, too short for its prelude, or addressed to another ship (vere forwards those only when it
    is a galaxy; we never do); else a plain packet is `%hear`d on /a/ames, a fine response `%hear`d on
    /ames/fine, and a fine request answered by vere itself from a peek (see fine.py);
  - a mesa packet (mesa/pact.c): dropped when larger than PACT_SIZE (v4.5) or when it does not sift
    (bad protocol or cookie, bad mug, truncated, trailing bytes); a poke to us is `%heer`d; a peek of
    our namespace is answered from a peek; a page is `%heer`d when it is a whole one-leaf message.
Pages need care: vere `%heer`s a page only when it asked for it (its pending-request table, filled by
%push effects) and reassembles multi-leaf messages itself (_mesa_hear_page). We keep no request table,
so we hand every one-leaf page to Arvo (which ignores what it did not ask for) and drop the others.
"""

from __future__ import annotations

import ipaddress
import zlib
from dataclasses import dataclass
from typing import Literal

from seguro.urbit import ames, fine, mesa
from seguro.urbit import ames_packet as ap
from seguro.urbit.noun import Noun, cord

FINE_WIRE: Noun = (cord("ames"), (cord("fine"), 0))  # [tar wir] of _fine_hear_response
STUN_COOKIE = bytes.fromhex("2112a442")
STUN_FINGERPRINT = bytes.fromhex("80280004")
STUN_XOR = 0x5354554E


@dataclass(frozen=True)
class Verdict:
    """hear (`form` says which event: "hear", "fine" or "heer"), drop (`reason` says why), scry (`sam`
    is the peek vere makes; `request` holds what the answer needs: a fine.Wail or a mesa.Pact) or stun (a
    STUN binding request, in `request`, which vere answers with the requester's address)."""

    action: Literal["hear", "drop", "scry", "stun"]
    reason: str = ""
    form: str = ""
    sam: Noun = 0
    request: object = None

    def ovum(self, ip: str, port: int, payload: bytes) -> Noun:
        """The ovum of a heard datagram from ip:port."""
        if self.action != "hear":
            raise ValueError(f"a {self.action} verdict makes no event")
        if self.form == "heer":
            return mesa.heer_ovum(ip, port, payload)
        wire, card = ames.datagram_to_ovum(ip, port, payload)
        return (FINE_WIRE, card) if self.form == "fine" else (wire, card)


def drop(reason: str) -> Verdict:
    return Verdict("drop", reason=reason)


def classify(payload: bytes, our: int, *, version: int | None = 0, stun_tid: bytes | None = None) -> Verdict:
    """What vere does with `payload` when it is ship `our`. `version` is the Ames protocol version vere
    filters on once it has scried it (_ames_prot_scry_cb; 0 today; None: no version filter). `stun_tid`
    is the transaction id of our own STUN request, if we sent one (we do not: vere's STUN client asks
    its galaxy for its public address, which a Seguro node behind its load balancer has no use for)."""
    if mesa.is_new_pact(payload):
        return _classify_mesa(payload, our)
    if is_stun_request(payload):  # vere answers it (_stun_on_request): no event
        return Verdict("stun", reason="stun", request=payload)
    if stun_tid is not None and is_stun_response(payload, stun_tid):
        return drop("stun")
    return _classify_ames(payload, our, version)


def _classify_ames(payload: bytes, our: int, version: int | None) -> Verdict:
    """ames.c, _ames_hear, in its order."""
    if len(payload) < ap.HEAD_SIZE:
        return drop("bad header")
    head = ap.sift_head(payload)
    if version is not None and head.ver != version:
        return drop("version")
    if len(payload) < ap.HEAD_SIZE + ap.origin_size(head):
        return drop("bad prelude")  # vere would mug past the end of the buffer
    if not ap.check_mug(head, payload):
        return drop("bad mug")
    end = ap.HEAD_SIZE + ap.prel_size(head)
    if len(payload) < end:
        return drop("bad prelude")
    prel = ap.sift_prel(head, payload[ap.HEAD_SIZE :])
    if prel.rec != our:
        return drop("not for us")
    if head.kind == "ames":
        return Verdict("hear", form="hear")
    if head.kind == "purr":
        return Verdict("hear", form="fine")
    try:
        wail = fine.sift_wail(head, prel, payload, end)
    except fine.FineError as e:
        return drop(str(e))
    return Verdict("scry", form="fine", sam=fine.peek_sam(wail), request=wail)


def _classify_mesa(payload: bytes, our: int) -> Verdict:
    """mesa.c, _mesa_hear and its _mesa_hear_peek / _mesa_hear_page / _mesa_hear_poke."""
    if len(payload) > mesa.PACT_SIZE:
        return drop("too large")
    try:
        pact = mesa.sift_pact(payload)
    except mesa.MesaSiftError as e:
        reason = str(e)
        return drop("bad mug" if reason == "bad mug" else "bad header" if reason.startswith("bad ") else
                    "bad mesa packet")  # fmt: skip
    if pact.typ == mesa.PAGE:
        whole = pact.name.fra == 0 and mesa.num_leaves(pact.tob) == 1
        return Verdict("hear", form="heer") if whole else drop("mesa fragment")
    if pact.name.her != our:
        return drop("not for us")
    if pact.typ == mesa.POKE:
        return Verdict("hear", form="heer")
    return Verdict("scry", form="mesa", sam=mesa_peek_sam(pact, our), request=pact)


def mesa_peek_sam(pact: mesa.Pact, our: int) -> Noun:
    """The peek of _mesa_hear_peek: u3_pier_peek with gang ~ and `[%.n %beam %ax bem]`, bem =
    `[[our %$ [%ud 1]] sky]`, sky from _name_to_jumbo_scry: /mess/<rif>/pact/31/etch/data/0/<path>
    (numbers as @ud text, _dire_etch_ud; the path split by _mesa_encode_path).
    The answer is built from the peek's result by seguro.urbit.mesa_answer (_mesa_page_scry_jumbo_cb,
    _mesa_send_piece). No keys are needed for that: Arvo's frame carries its own signature or hmac, its
    LSS proof and hash pairs."""
    tail = (cord("etch"), (cord("data"), (fine.scot_ud(0), mesa.encode_path(pact.name.path))))
    sky = (cord("mess"), (fine.scot_ud(pact.name.rif), (cord("pact"), (fine.scot_ud(31), tail))))
    bem = ((our, (0, (cord("ud"), 1))), sky)
    return (0, (1, (cord("beam"), (cord("ax"), bem))))


# ---------------------------------------------------------------- STUN (pkg/vere/io/ames/stun.c)


def _has_fingerprint(data: bytes) -> bool:
    """_stun_has_fingerprint: the first FINGERPRINT attribute after the 20-byte header ends the packet
    and holds crc32 of what precedes it, xor 0x5354554e, big-endian."""
    if len(data) < 28:
        return False
    at = data.find(STUN_FINGERPRINT, 20)
    if at < 0 or at + 8 != len(data):
        return False
    return data[at + 4 : at + 8] == (zlib.crc32(data[:at]) ^ STUN_XOR).to_bytes(4, "big")


def is_stun_request(data: bytes) -> bool:
    """u3_stun_is_request: a binding request (type 0x0001), the magic cookie, a fingerprint."""
    return len(data) >= 28 and data[:2] == b"\x00\x01" and data[4:8] == STUN_COOKIE and _has_fingerprint(data)


def is_stun_response(data: bytes, tid: bytes) -> bool:
    """u3_stun_is_our_response: exactly 40 bytes, success (0x0101), the cookie, our transaction id."""
    return (len(data) == 40 and data[:2] == b"\x01\x01" and data[4:8] == STUN_COOKIE
            and data[8:20] == tid and _has_fingerprint(data))  # fmt: skip


def stun_response(request: bytes, ip: str, port: int) -> bytes:
    """What vere sends back to a STUN request from ip:port (u3_stun_make_response): the request's
    header as a success response of 20 bytes, XOR-MAPPED-ADDRESS, FINGERPRINT."""
    address = int(ipaddress.IPv4Address(ip))
    head = b"\x01\x01\x00\x14" + request[4:20]
    mapped = b"\x00\x20\x00\x08\x00\x01" + (port ^ 0x2112).to_bytes(2, "big")
    body = head + mapped + (address ^ 0x2112A442).to_bytes(4, "big")
    return body + STUN_FINGERPRINT + (zlib.crc32(body) ^ STUN_XOR).to_bytes(4, "big")
