"""Read-only views of a ship's replication state in etcd, for the CLI, the demo and tests."""

from __future__ import annotations

import time

from seguro.coordination import Coordinator


def _coordinator(etcd: str, ship: str) -> Coordinator:
    return Coordinator(etcd, ship, timeout_s=2.0, retry_budget_s=3.0)


def leader_info(etcd: str, ship: str) -> dict[str, object] | None:
    with _coordinator(etcd, ship) as coord:
        master = coord.master()
    if master is None:
        return None
    return {"id": master.node_id, "epoch": master.epoch, "lease": master.lease_id,
            "ttl_remaining": master.ttl_remaining_s, **master.info}  # fmt: skip


def status_rows(etcd: str, ship: str, stale_after_s: float = 5.0) -> dict[str, object]:
    with _coordinator(etcd, ship) as coord:
        master, replicas, (head, _) = coord.master(), coord.replicas(), coord.head()
    now = time.time()
    rows = []
    for replica_id, st in sorted(replicas.items()):
        age_s = now - float(st.get("updated_at", 0))
        role = st.get("role", "?") if age_s < stale_after_s else "unreachable"
        if master is not None and replica_id == master.node_id and role == "master":
            role = "master"
        durable = int(st.get("durable_event", 0))
        rows.append({"id": replica_id, "role": role, "durable_event": durable,
                     "applied_event": int(st.get("applied_event", 0)), "lag": max(0, head - durable),
                     "grpc": st.get("grpc"), "udp": st.get("udp"), "seen_s_ago": round(age_s, 1),
                     "error": st.get("error", "")})  # fmt: skip
    return {"head": head, "master": master.node_id if master else None, "replicas": rows}
