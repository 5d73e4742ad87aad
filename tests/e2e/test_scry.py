"""End to end: a remote-scry ("fine") request and a mesa peek sent to every replica, as the load balancer
sends them, are answered once, by the master, from a peek of its runtime: never by an event. A master
SIGSTOPped past its lease does not answer the request it finds when it wakes; the new master does."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import pytest

from seguro.node.config import parse_hostport
from seguro.ops.admin import status_rows
from seguro.urbit import fine, mesa, mesa_answer
from seguro.urbit.ames_filter import classify
from seguro.urbit.ship import scry
from seguro.urbit.ship.kernel import Kernel
from tests.e2e.helpers import TTL_S, Cluster, wait_until
from tests.urbit.test_ames_filter import ames_packet, mesa_name, mesa_packet, wail_body

pytestmark = pytest.mark.e2e
ZOD, THEM = 0, 0x0200  # the ship (~zod) and a star asking it


def listen(sock: socket.socket, seconds: float) -> list[tuple[bytes, tuple[str, int]]]:
    heard, until = [], time.monotonic() + seconds
    while time.monotonic() < until:
        try:
            heard.append(sock.recvfrom(65_535))
        except TimeoutError:
            continue
    return heard


def test_the_master_answers_a_scry_from_a_peek_and_a_fenced_one_does_not(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path / "cluster", extra=["--runtime", "ship", "--ames-filter"])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.1)
    request = ames_packet(THEM, ZOD, wail_body(1, b"/c/x/1/kids/sys/kelvin"), sim=1)
    verdict = classify(request, ZOD)
    answer = fine.answer(verdict.request, scry.peek_fine(Kernel(who="~zod"), verdict.sam))  # type: ignore[arg-type]
    udp = {n["id"]: parse_hostport("udp", n["udp"]) for n in cluster.state["nodes"]}

    def rows() -> dict[str, dict]:
        return {r["id"]: r for r in status_rows(cluster.etcd, cluster.ship)["replicas"]}

    try:
        wait_until("the replicas to converge", cluster.converged, timeout_s=20, every_s=0.2)
        old, head = cluster.master(), cluster.head()
        for address in udp.values():
            sock.sendto(request, address)
        heard = listen(sock, 2.0)
        assert heard == [(answer, udp[old["id"]])], heard  # once, from the master, what vere would send
        assert cluster.head() == head, "a scry request became an event"

        def counted() -> bool:
            now = rows()
            return now[old["id"]]["scry"]["answered"] == 1 and all(
                now[n]["scry"].get("not master") == 1 for n in udp if n != old["id"]
            )

        wait_until("the answer counted in status", counted, timeout_s=5)

        # a mesa peek of fragment 1 of a three-leaf message: its leaf, as vere sends it, from the master
        mesa_peek = mesa_packet(mesa.PEEK, mesa_name(ZOD, b"big/3.000", 1))
        peeked = classify(mesa_peek, ZOD)
        page = mesa_answer.answer(peeked.request, scry.peek_mesa(Kernel(who="~zod"), peeked.sam))  # type: ignore[arg-type]
        for address in udp.values():
            sock.sendto(mesa_peek, address)
        heard = listen(sock, 2.0)
        assert heard == [(page, udp[old["id"]])], heard
        assert cluster.head() == head, "a mesa peek became an event"

        def mesa_counted() -> bool:
            now = rows()
            return now[old["id"]]["scry"].get("mesa answered") == 1 and all(
                now[n]["scry"].get("mesa not master") == 1 for n in udp if n != old["id"]
            )

        wait_until("the mesa answer counted in status", mesa_counted, timeout_s=5)

        pid = cluster.node(old["id"])["pid"]
        os.kill(pid, signal.SIGSTOP)
        try:
            def new_master() -> bool:
                info = cluster.master_or_none() or {}
                return info.get("id") not in (None, old["id"]) and rows()[info["id"]]["role"] == "master"

            wait_until("a new master", new_master, timeout_s=TTL_S + 15, every_s=0.2)
            new = cluster.master()
            for address in udp.values():  # the stopped master's socket keeps it until it wakes
                sock.sendto(request, address)
        finally:
            os.kill(pid, signal.SIGCONT)
        heard = listen(sock, 2.5)
        assert heard == [(answer, udp[new["id"]])], heard  # the woken master sent nothing

        def refused() -> bool:
            counts = rows()[old["id"]]["scry"]
            return counts["answered"] == 1 and counts.get("not master", 0) + counts.get("fenced", 0) == 1

        wait_until("the woken master's refusal counted", refused, timeout_s=10)
    finally:
        sock.close()
        cluster.close()
