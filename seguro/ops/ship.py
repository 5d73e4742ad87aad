"""Bringing a ship into being: the genesis record and the ship's first batch, written once in etcd.

A node never boots a ship on its own (a mistyped --ship or a wiped etcd would otherwise start a second
copy of a ship that runs elsewhere: a double boot). `create_ship` is the one way a reference ship's log
begins; a real ship's log enters by pier import.
"""

from __future__ import annotations

import getpass
import socket
import time
import uuid
from datetime import UTC, datetime

from seguro.node.etcd.coordinator import Coordinator, Genesis, ShipExists
from seguro.node.etcd.sealing import Keyring
from seguro.urbit.record import encode_record
from seguro.urbit.ship.kernel import boot_events


def new_genesis(who: str, now_s: float, first_event: int = 1) -> Genesis:
    """A genesis with a fresh random id, saying who created it, where and when."""
    created_at = datetime.fromtimestamp(now_s, UTC).isoformat(timespec="seconds")
    creator = f"{getpass.getuser()}@{socket.gethostname()}"
    return Genesis(uuid.uuid4().hex, who, creator, created_at, first_event)


def create_ship(
    etcd: str, ship: str, who: str = "~zod", now_s: float | None = None, keyring: Keyring | None = None
) -> Genesis:
    """Write the reference ship's genesis and its boot sequence as events 1.. (vere stores boot events
    with mug 0). ShipExists when the name is taken in this etcd; ValueError for a malformed @p."""
    now_s = time.time() if now_s is None else now_s
    records = [encode_record(0, event) for event in boot_events(who, now_s)]
    genesis = new_genesis(who, now_s)
    with Coordinator(etcd, ship, keyring=keyring) as coord:  # the boot events hold the ship's keys
        coord.create_genesis(genesis, records)
    return genesis


def ensure_ship(
    etcd: str, ship: str, who: str = "~zod", keyring: Keyring | None = None
) -> tuple[Genesis, bool]:
    """Create the reference ship unless it exists (for a deployment run again and again): (its genesis,
    whether this call created it). A ship of that name made as another @p is refused (ShipExists), not
    taken for this one."""
    try:
        return create_ship(etcd, ship, who, keyring=keyring), True
    except ShipExists:
        with Coordinator(etcd, ship) as coord:
            found = coord.genesis()
        if found is None or found.who != who:
            held = "a log and no genesis record" if found is None else f"{found.who}, genesis {found.id}"
            raise ShipExists(f"ship {ship} exists in etcd as {held}, not as {who}") from None
        return found, False
