"""What the end-to-end tests share: a local cluster of real processes, and a bounded wait."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from seguro.node import tls
from seguro.node.config import parse_hostport
from seguro.ops import cluster as local
from seguro.ops.admin import leader_info, status_rows
from seguro.ops.demo import Peer, compare_logs

TTL_S = 3


def wait_until(what: str, predicate: Callable[[], bool], timeout_s: float, every_s: float = 0.05) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if predicate():
            return time.monotonic() - started
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


class Cluster:
    """A local cluster whose nodes bind gRPC on every interface and advertise 127.0.0.1 (--advertise-grpc),
    as a deployment would, so every end-to-end test goes through advertised addresses."""

    def __init__(
        self,
        workdir: Path,
        extra: list[str] | None = None,
        replicas: int = 3,
        who: str | None = "~zod",
        etcd_args: list[str] | None = None,
        seal: bool = False,
        secure: bool = False,
    ) -> None:
        self.workdir = workdir
        self.state = local.up(
            workdir, replicas=replicas, ttl_s=TTL_S, extra=extra, who=who, bind_host="0.0.0.0",
            etcd_args=etcd_args, seal=seal, secure=secure,
        )  # fmt: skip
        self.etcd, self.ship = self.state["etcd"], self.state["ship"]
        self.peer = Peer({n["id"]: parse_hostport("udp", n["udp"]) for n in self.state["nodes"]})

    def node(self, node_id: str) -> dict:
        return next(n for n in local.read_state(self.workdir)["nodes"] if n["id"] == node_id)

    def master_or_none(self) -> dict | None:
        return leader_info(self.etcd, self.ship)

    def master(self) -> dict:
        info = leader_info(self.etcd, self.ship)
        assert info is not None, "no master"
        return info

    def send(self, count: int, rate_per_s: float = 400.0) -> None:
        for _ in range(count):
            self.peer.send_one()
            time.sleep(1 / rate_per_s)

    def converged(self, replicas: int = 3) -> bool:
        report = status_rows(self.etcd, self.ship)
        rows = [r for r in report["replicas"] if r["role"] != "unreachable"]
        return len(rows) == replicas and all(r["durable_event"] == report["head"] for r in rows)

    def head(self) -> int:
        return int(status_rows(self.etcd, self.ship)["head"])

    def logs_agree(self) -> dict[str, int]:
        agree, last, why = compare_logs({n["id"]: n["data"] for n in local.read_state(self.workdir)["nodes"]})
        assert agree, why
        return last

    def close(self) -> None:
        self.peer.close()
        try:
            local.down(self.workdir)
        finally:
            tls.configure(None)  # a --tls cluster made this process its operator
