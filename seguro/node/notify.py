"""The service manager's readiness protocol (systemd's sd_notify): a unit of `Type=notify` counts as
started when the node says READY=1, which it says once it has joined its ship (the genesis found, the
runtime up, its first status written to etcd), not when its ports bind. So `systemctl start` and an
Ansible play wait for a replica that can actually take over, and a rolling restart never takes the next
host down while the last one is still catching up.

The protocol is one datagram of `KEY=value` lines to the AF_UNIX socket named by $NOTIFY_SOCKET (a path,
or an abstract name when it starts with '@'). Without $NOTIFY_SOCKET every call does nothing."""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Mapping

log = logging.getLogger(__name__)
JOINED_ROLES = ("follower", "promoting", "master")


class Notifier:
    """Says READY=1 once, STOPPING=1 at shutdown and a STATUS= line on role changes. A failed send is
    logged, never raised: the service manager's bookkeeping must not stop a replica."""

    def __init__(self, environ: Mapping[str, str] = os.environ) -> None:
        path = environ.get("NOTIFY_SOCKET", "")
        self.address = "\0" + path[1:] if path.startswith("@") else path
        self.ready = False
        self._said_role = ""
        self._lock = threading.Lock()  # the status thread and the driver thread both call in

    def joined(self, status: Mapping[str, object]) -> None:
        """Called after each status written to etcd: READY=1 the first time the node counts as joined."""
        role = str(status.get("role", ""))
        line = f"STATUS={role}, event {status.get('durable_event', 0)}"
        with self._lock:
            first = not self.ready and role in JOINED_ROLES and bool(status.get("runtime_ready"))
            self.ready = self.ready or first
            changed, self._said_role = role != self._said_role, role
        if first:
            self._send(f"READY=1\n{line}\nMAINPID={os.getpid()}")
        elif changed:
            self._send(line)

    def stopping(self, restarting: bool = False) -> None:
        """STOPPING=1, or for `seguro reinit`'s restart in place RELOADING=1: the same process comes back and
        says READY=1 again once it has rejoined (STOPPING would have the manager kill it mid catch-up)."""
        if restarting:
            self._send("RELOADING=1\nSTATUS=reinit: restarting to rebuild from peers")
        else:
            self._send("STOPPING=1\nSTATUS=resigning and stopping")

    def _send(self, message: str) -> None:
        if not self.address:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto(message.encode(), self.address)
        except OSError as e:
            log.warning("service manager notification failed", extra={"error": str(e)})
