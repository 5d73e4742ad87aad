"""sd_notify: READY=1 once the node has joined (not when it binds), over a real AF_UNIX socket."""

from __future__ import annotations

import socket
from pathlib import Path

from seguro.node.notify import Notifier


def listen(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(0.05)
    return sock


def received(sock: socket.socket) -> list[str]:
    out = []
    for _ in range(20):
        try:
            out.append(sock.recv(4096).decode())
        except TimeoutError:
            break
    return out


def test_ready_only_once_joined_with_a_runtime(tmp_path: Path) -> None:
    sock = listen(tmp_path / "notify")
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "notify")})
    notifier.joined({"role": "waiting", "runtime_ready": False})
    notifier.joined({"role": "follower", "runtime_ready": False, "durable_event": 3})
    assert not any("READY=1" in m for m in received(sock))
    assert not notifier.ready
    notifier.joined({"role": "follower", "runtime_ready": True, "durable_event": 5})
    notifier.joined({"role": "follower", "runtime_ready": True, "durable_event": 6})
    notifier.joined({"role": "master", "runtime_ready": True, "durable_event": 7})
    notifier.stopping()
    messages = received(sock)
    assert sum("READY=1" in m for m in messages) == 1
    assert "STATUS=follower, event 5" in messages[0] and "MAINPID=" in messages[0]
    assert messages[1] == "STATUS=master, event 7"
    assert messages[2].startswith("STOPPING=1")
    notifier.stopping(restarting=True)  # seguro reinit: the same pid comes back, never STOPPING
    assert received(sock)[0].startswith("RELOADING=1")


def test_abstract_socket_and_no_socket() -> None:
    name = f"seguro-test-{id(object())}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(0.5)
    Notifier({"NOTIFY_SOCKET": "@" + name}).joined({"role": "master", "runtime_ready": True})
    assert sock.recv(4096).startswith(b"READY=1")
    Notifier({}).joined({"role": "master", "runtime_ready": True})  # no manager: nothing, no error


def test_a_vanished_socket_is_logged_not_raised(tmp_path: Path) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    notifier.joined({"role": "master", "runtime_ready": True})
    assert notifier.ready
