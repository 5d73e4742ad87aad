"""`seguro reload` and SIGHUP: which settings a running node takes on at once, and which need a restart.

Live: who may campaign (`nofailover`, `failover_priority`), the /replica lag bound and the snapshot
interval. Everything else (addresses, the lease TTL, the runtime, retention, `ack_replicas`: what other
parts were built from, or what replicas must agree on) is named as needing a restart and left as it is.
"""

from __future__ import annotations

from dataclasses import fields

from seguro.node.config import NodeConfig

LIVE = ("nofailover", "failover_priority", "replica_max_lag", "snapshot_every")


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
