"""Operators' controls over who serves, as Patroni gives them: maintenance mode (`seguro pause` /
`seguro resume`: no automatic failover while paused), a planned switchover to a named replica, and a
failover to a named replica when there is no healthy master.

They are keys under `control/` in etcd, read by every replica each status round (seguro.core.election:
a named candidate is the only replica that campaigns; a paused ship's followers campaign not at all).
The candidate key rides on a lease, so a crashed admin leaves nothing behind for long. Safety never
rests on them: fencing decides who may commit and emit, whatever the controls say.
"""

from __future__ import annotations

import json
import time

import grpc

from seguro.node import tls
from seguro.node.etcd.coordinator import Coordinator
from seguro.ops.admin import AdminError, NoMasterError, coordinator_for, step_down, wait_for_master
from seguro.proto.seguro.v1 import replication_pb2 as pb
from seguro.proto.seguro.v1 import replication_pb2_grpc as rpc

CANDIDATE_TTL_S = 60  # the most a switchover or failover may take before the candidate key lapses
FRESH_S = 5.0  # a replica that published its status this recently is up


def pause(etcd: str, ship: str, by: str) -> dict[str, object]:
    with coordinator_for(etcd, ship) as coord:
        coord.put_control("pause", {"by": by, "at": time.time()})
    return {"paused": True, "by": by}


def resume(etcd: str, ship: str) -> dict[str, object]:
    with coordinator_for(etcd, ship) as coord:
        was = coord.delete_control("pause")
    return {"paused": False, "was_paused": was}


def switchover(etcd: str, ship: str, candidate: str, timeout_s: float = 15.0) -> dict[str, object]:
    """Hand the ship from its master to `candidate`: every live replica is told first (and must say it
    heard), then the master steps down and only the candidate campaigns."""
    with coordinator_for(etcd, ship) as coord:
        master = coord.master()
        if master is None:
            raise NoMasterError(f"ship {ship} has no master to switch over from; use `seguro failover`")
        if master.node_id == candidate:
            raise AdminError(f"{candidate} is already the master")
        _check_candidate(coord, ship, candidate)
        lease = coord.grant_lease(CANDIDATE_TTL_S)
        coord.put_control("candidate", {"id": candidate, "by": "switchover"}, lease)
        try:
            _wait_until_heard(coord, candidate, min(timeout_s, 10.0))
            result = step_down(etcd, ship, timeout_s)
        finally:
            coord.revoke(lease)  # the key goes with its lease
    if result["new"] != candidate:  # only the candidate campaigns: this would be a bug
        raise AdminError(f"{result['new']} became master, not {candidate}")
    return result


def failover(etcd: str, ship: str, candidate: str, timeout_s: float = 15.0) -> dict[str, object]:
    """Have `candidate` take over a ship that has no healthy master (also while paused)."""
    started_s = time.monotonic()
    with coordinator_for(etcd, ship) as coord:
        master, replicas = coord.master(), coord.replicas()
        if master is not None and _fresh(replicas.get(master.node_id, {})):
            raise AdminError(f"ship {ship} has a healthy master ({master.node_id}); use `seguro switchover`")
        _check_candidate(coord, ship, candidate)
        lease = coord.grant_lease(CANDIDATE_TTL_S)
        coord.put_control("candidate", {"id": candidate, "by": "failover"}, lease)
        try:
            new = wait_for_master(etcd, ship, timeout_s)
        finally:
            coord.revoke(lease)
    if new["id"] != candidate:
        raise AdminError(f"{new['id']} became master, not {candidate}")
    return {"new": new["id"], "new_epoch": new["epoch"], "seconds": round(time.monotonic() - started_s, 2)}


def _check_candidate(coord: Coordinator, ship: str, candidate: str) -> None:
    status = coord.replicas().get(candidate)
    if status is None:
        raise AdminError(f"ship {ship} has no replica {candidate!r} registered")
    if not _fresh(status):
        raise AdminError(f"{candidate} has not published its status lately: it is not running")
    if status.get("nofailover"):
        raise AdminError(f"{candidate} is a nofailover replica: it never serves")
    if status.get("role") not in ("follower", "master"):
        raise AdminError(f"{candidate} is {status.get('role')!r}, not a follower that could serve")


def _wait_until_heard(coord: Coordinator, candidate: str, timeout_s: float) -> None:
    """Until every live replica publishes that it knows the candidate (a status round, about a second):
    a replica that had not heard could win the election the step-down opens."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        live = [s for s in coord.replicas().values() if _fresh(s)]
        if all(s.get("candidate") == candidate or s.get("role") == "master" for s in live):
            return
        time.sleep(0.2)
    raise AdminError(f"not every live replica heard of the switchover to {candidate} within {timeout_s} s")


def _fresh(status: dict) -> bool:
    return time.time() - float(status.get("updated_at", 0)) < FRESH_S


def reload_settings(etcd: str, ship: str, node_id: str | None = None) -> dict[str, object]:
    """Ask one running replica (or every one that published lately) to read its settings again."""
    with coordinator_for(etcd, ship) as coord:
        replicas = coord.replicas()
    targets = (
        {node_id: replicas.get(node_id)} if node_id else {i: s for i, s in replicas.items() if _fresh(s)}
    )
    if node_id and (targets[node_id] is None or not _fresh(targets[node_id] or {})):
        raise AdminError(f"ship {ship} has no running replica {node_id!r}")
    answers: dict[str, object] = {}
    for replica, status in sorted(targets.items()):
        address = str((status or {}).get("grpc", ""))
        try:
            with tls.channel(address) as channel:
                reply = rpc.AdminStub(channel).Reload(pb.ReloadRequest(), timeout=5)
        except grpc.RpcError as e:
            answers[replica] = {"error": f"{e.code().name}: {e.details()}"}  # type: ignore[attr-defined]
            continue
        applied = {k: json.loads(v) for k, v in reply.applied.items()}
        answers[replica] = {
            "applied": applied,
            "restart_needed": list(reply.restart_needed),
            "error": reply.error,
        }
    return answers


def reinit_replica(etcd: str, ship: str, node_id: str, by: str, timeout_s: float) -> dict[str, object]:
    """Have a running follower rebuild its log and runtime from its peers; returns once it is back as a
    follower at the ship's head (or AdminError: refused, unreachable, or not back within timeout_s)."""
    with coordinator_for(etcd, ship) as coord:
        status = coord.replicas().get(node_id)
    if status is None or not _fresh(status):
        raise AdminError(f"ship {ship} has no running replica {node_id!r}")
    try:
        with tls.channel(str(status.get("grpc", ""))) as channel:
            reply = rpc.AdminStub(channel).Reinit(pb.ReinitRequest(by=by), timeout=10)
    except grpc.RpcError as e:
        raise AdminError(f"replica {node_id}: {e.code().name}: {e.details()}") from None  # type: ignore[attr-defined]
    if not reply.accepted:
        raise AdminError(f"replica {node_id} refused: {reply.error}")
    started_s, deadline = float(status.get("started_at", 0)), time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with coordinator_for(etcd, ship) as coord:
            now, (head, _) = coord.replicas().get(node_id) or {}, coord.head()
        restarted = float(now.get("started_at", 0)) > started_s and now.get("role") == "follower"  # its clock
        if restarted and int(now.get("durable_event", 0)) >= head:
            return {"id": node_id, "aside": reply.aside, "durable_event": now["durable_event"],
                    "bootstrapped": now.get("bootstrapped")}  # fmt: skip
        time.sleep(0.5)
    raise AdminError(f"replica {node_id} accepted the reinit (old data in {reply.aside}) but is not back "
                     f"at the ship's head within {timeout_s} s: see its log")  # fmt: skip
