"""Operator views of a ship's replication state in etcd (read-only), and the planned switchover."""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import asdict

import grpc

from seguro.node import tls
from seguro.node.etcd.coordinator import CoordinationError, Coordinator
from seguro.proto.seguro.v1 import replication_pb2 as pb
from seguro.proto.seguro.v1 import replication_pb2_grpc as rpc


class AdminError(RuntimeError):
    """An operator action could not be carried out; the message says why and what state things are in."""


class NoMasterError(AdminError):
    """The ship has no master (now, or within the wait)."""


def coordinator_for(etcd: str, ship: str) -> Coordinator:
    return Coordinator(etcd, ship, timeout_s=2.0, retry_budget_s=3.0)


def leader_info(etcd: str, ship: str) -> dict[str, object] | None:
    with coordinator_for(etcd, ship) as coord:
        master = coord.master()
    if master is None:
        return None
    return {"id": master.node_id, "epoch": master.epoch, "lease": master.lease_id,
            "ttl_remaining": master.ttl_remaining_s, **master.info}  # fmt: skip


def status_rows(etcd: str, ship: str, stale_after_s: float = 5.0) -> dict[str, object]:
    with coordinator_for(etcd, ship) as coord:
        genesis, master, replicas, (head, _) = coord.genesis(), coord.master(), coord.replicas(), coord.head()
        alarms, controls = coord.alarms(), coord.controls()
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
                     "genesis": st.get("genesis", ""), "nofailover": bool(st.get("nofailover", False)),
                     "failover_priority": int(st.get("failover_priority", 1)),
                     "campaign": st.get("campaign", ""), "effects_unserved": st.get("effects_unserved", {}),
                     "snapshot_event": int(st.get("snapshot_event", 0)),
                     "bootstrapped": st.get("bootstrapped"), "version": st.get("version", ""),
                     "scry": st.get("scry", {}), "paused": st.get("paused", ""),
                     "settings": st.get("settings", {}), "error": st.get("error", "")})  # fmt: skip
    return {"head": head, "master": master.node_id if master else None, "etcd_alarms": alarms,
            "paused": controls.get("pause"), "candidate": (controls.get("candidate") or {}).get("id"),
            "genesis": asdict(genesis) if genesis else None, "replicas": rows,
            "differ": differences(rows)}  # fmt: skip


def differences(rows: list[dict]) -> dict[str, dict[str, list[str]]]:
    """Settings that must agree across replicas, and the version, where live replicas differ:
    {setting: {value: [replica ids]}} (a rolling upgrade shows as two versions)."""
    seen: dict[str, dict[str, list[str]]] = {}
    for row in rows:
        if row["role"] == "unreachable":
            continue
        values = {**row["settings"], "version": row["version"]}
        for key, value in values.items():
            seen.setdefault(key, {}).setdefault(json.dumps(value), []).append(row["id"])
    return {key: by_value for key, by_value in sorted(seen.items()) if len(by_value) > 1}


def wait_for_master(etcd: str, ship: str, timeout_s: float, not_id: str | None = None) -> dict:
    """Block until a master other than `not_id` holds the key and reports itself master; its record."""
    deadline = time.monotonic() + timeout_s
    with Coordinator(etcd, ship, timeout_s=1.0, retry_budget_s=1.0) as coord:
        while time.monotonic() < deadline:
            with contextlib.suppress(CoordinationError):
                master = coord.master()
                if master is not None and master.node_id != not_id:
                    status = coord.replicas().get(master.node_id, {})
                    if status.get("role") == "master" and status.get("epoch") == master.epoch:
                        return {"id": master.node_id, "epoch": master.epoch, **master.info}
            time.sleep(0.05)
    others = f" other than {not_id}" if not_id else ""
    raise NoMasterError(f"no master{others} serving ship {ship} after {timeout_s} s")


def step_down(etcd: str, ship: str, timeout_s: float = 15.0) -> dict[str, object]:
    """A planned switchover (before maintenance on the master's machine): ask the master over gRPC to step
    down, which fences it and holds it back from the next election, then wait for another replica to
    serve. Returns who was and who is master, with their epochs and the seconds it took."""
    old = leader_info(etcd, ship)
    if old is None:
        raise NoMasterError(f"ship {ship} has no master to step down")
    address = str(old.get("grpc", ""))
    started_s = time.monotonic()
    try:
        with tls.channel(address) as channel:
            reply = rpc.AdminStub(channel).StepDown(pb.StepDownRequest(), timeout=5)
    except grpc.RpcError as e:
        detail = f"{e.code().name}: {e.details()}"  # type: ignore[attr-defined]
        raise AdminError(f"master {old['id']} at {address} did not take the request ({detail})") from None
    if not reply.was_master:
        raise AdminError(f"{old['id']} at {address} was no longer master; see `seguro leader`")
    new = wait_for_master(etcd, ship, timeout_s, not_id=str(old["id"]))
    return {"old": old["id"], "old_epoch": old["epoch"], "new": new["id"], "new_epoch": new["epoch"],
            "seconds": round(time.monotonic() - started_s, 2)}  # fmt: skip


def forget_replica(etcd: str, ship: str, node_id: str, stale_after_s: float = 5.0) -> None:
    """Remove a decommissioned replica from `replica/`, so status stops listing it and the master stops
    pushing to it. Refused for the master and for a replica that published its status lately (running)."""
    with coordinator_for(etcd, ship) as coord:
        master, replicas = coord.master(), coord.replicas()
        if node_id not in replicas:
            raise AdminError(f"ship {ship} has no replica {node_id!r} registered")
        if master is not None and master.node_id == node_id:
            raise AdminError(f"{node_id} is the master; `seguro step-down` first, then stop it")
        age_s = time.time() - float(replicas[node_id].get("updated_at", 0))
        if age_s < stale_after_s:
            raise AdminError(f"{node_id} published its status {age_s:.1f} s ago: stop it first")
        coord.delete_replica(node_id)
