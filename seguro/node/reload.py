"""`seguro reload` and SIGHUP: which settings a running node takes on at once, and which need a restart.

Live: who may campaign (`nofailover`, `failover_priority`), the /replica lag bound, the snapshot
interval and the event keyring (read again on every reload: a key rotation rewrites the file). Everything
else (addresses, the lease TTL, the runtime, retention, `ack_replicas`: what other parts were built from,
or what replicas must agree on) is named as needing a restart and left as it is.
"""

from __future__ import annotations

import logging
from dataclasses import fields, replace
from typing import Any, Protocol

from seguro.core import messages as m
from seguro.node.config import ConfigError, NodeConfig


class Reloadable(Protocol):
    """What a reload touches of the driver's Node (named here: the driver imports this module)."""

    cfg: NodeConfig
    read_settings: Any  # () -> NodeConfig, or None when the node has no settings to read again
    http: Any
    runtime: Any
    coord: Any

    def post(self, event: m.Event) -> None: ...


log = logging.getLogger(__name__)

LIVE = ("nofailover", "failover_priority", "replica_max_lag", "snapshot_every", "event_keys")


def changes(old: NodeConfig, new: NodeConfig) -> tuple[dict[str, object], list[str]]:
    """(live settings that changed: name -> new value, names of other settings that changed)."""
    live: dict[str, object] = {}
    restart: list[str] = []
    for f in fields(NodeConfig):
        before, after = getattr(old, f.name), getattr(new, f.name)
        if before != after:
            if f.name in LIVE:
                live[f.name] = after
            else:
                restart.append(f.name)
    return live, restart


def reload_settings(node: Reloadable) -> dict[str, object]:
    """Read a running node's settings again and apply the live ones to it (the driver's `reload`)."""
    if node.read_settings is None:
        return {"applied": {}, "restart_needed": [], "error": "this node has no settings to read again"}
    try:
        new = node.read_settings()
        live, restart = changes(node.cfg, new)
        keyring = new.keyring()  # read again even at the same path: a key rotation rewrites the file
        before = node.coord.keyring
        if (before is None) != (keyring is None):  # either way, peers or etcd's batches would be refused
            raise ConfigError("event_keys: sealing cannot be turned on or off live (sealed and plaintext "
                              "batches cannot mix in one ship); restart every replica with the same "
                              "setting")  # fmt: skip
        node.cfg = replace(node.cfg, **live)  # validated again; nothing changed before this line
    except (ConfigError, ValueError, OSError) as e:
        return {"applied": {}, "restart_needed": [], "error": str(e)}
    if before != keyring:  # the whole keyring: new bytes under an old id count too
        node.coord.keyring = keyring  # new batches go out under its current key; ids only ever reported
        live["event_keys"] = {"current": keyring.current, "ids": keyring.ids} if keyring else None
    node.post(m.Reconfigured(node.cfg.nofailover or node.cfg.log_only, node.cfg.failover_priority))
    if node.http is not None:
        node.http.replica_max_lag = node.cfg.replica_max_lag
    node.runtime.set_snapshot_every(node.cfg.snapshot_every)
    log.info("settings reloaded", extra={"applied": live, "restart_needed": restart})
    return {"applied": live, "restart_needed": restart, "error": ""}
