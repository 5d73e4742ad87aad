"""The Ansible deployment, run for real: `ansible-playbook site.yml` against three inventory hosts on this
machine (local connection; each host its own loopback address, path prefix and ports), in the roles' test
mode (the rendered systemd units run under ansible/roles/service/files/unitrun.py, as there is no systemd
here). The cluster it brings up must elect one master, answer datagrams, restart a SIGKILLed replica, and
a second run must change nothing."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from seguro.ops.demo import Peer
from tests.e2e.helpers import wait_until

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
ANSIBLE = ROOT / "ansible"
HOSTS = {"h1": "127.0.0.2", "h2": "127.0.0.3", "h3": "127.0.0.4"}
BIN = Path(sys.executable).parent


def free_port(ip: str) -> int:
    with socket.socket() as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        tcp.bind((ip, 0))
        port = tcp.getsockname()[1]
        udp.bind((ip, port))  # the same number free for UDP too (the ship's Ames port)
        return port


def inventory(work: Path) -> tuple[Path, dict[str, dict[str, int]]]:
    ports = {h: {k: free_port(ip) for k in ("client", "peer")} for h, ip in HOSTS.items()}
    lines = ["[etcd]"]
    for h, ip in HOSTS.items():
        lines.append(f"{h} advertise_host={ip} service_prefix={work / h} "
                     f"etcd_client_port={ports[h]['client']} etcd_peer_port={ports[h]['peer']}")  # fmt: skip
    lines += ["", "[seguro]", *HOSTS, "", "[all:vars]", "ansible_connection=local",
              f"ansible_python_interpreter={sys.executable}"]  # fmt: skip
    path = work / "inventory.ini"
    path.write_text("\n".join(lines) + "\n")
    return path, ports


def playbook_vars(work: Path, wheel: Path) -> Path:
    """Two ships on every host (several ships per host), the first with a floating IP."""
    ships = [{"name": name, "who": who, "create": True, "grpc_port": free_port("127.0.0.2"),
              "udp_port": free_port("127.0.0.2"), "http_port": free_port("127.0.0.2")}
             for name, who in (("zod", "~zod"), ("nec", "~nec"))]  # fmt: skip
    ships[0]["floating_ip"] = "127.0.0.100/8"
    settings = {"service_manager": "supervisor", "seguro_wheel": str(wheel), "seguro_ships": ships,
                "seguro_settings": {"snapshot_every": 500}, "seguro_tls": True, "seguro_seal_events": True,
                "seguro_pki_dir": str(work / "pki"),
                "seguro_controller_cli": str(BIN / "seguro")}  # fmt: skip
    path = work / "vars.json"
    path.write_text(json.dumps(settings))
    return path


def playbook(inv: Path, extra: Path) -> str:
    env = {**os.environ, "ANSIBLE_CONFIG": str(ANSIBLE / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
           "PATH": f"{BIN}:{os.environ['PATH']}", "ANSIBLE_LOCAL_TEMP": str(inv.parent / "tmp")}  # fmt: skip
    done = subprocess.run([BIN / "ansible-playbook", "-i", inv, "-e", f"@{extra}", "site.yml"], cwd=ANSIBLE,
                          env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    return done.stdout


def recap(out: str) -> dict[str, int]:
    """host -> changed count, from the PLAY RECAP."""
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(h\d)\s+: ok=\d+\s+changed=(\d+)", out, re.M)}


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return reply.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0


def primaries(ship: dict) -> list[int]:
    """What each host's /primary answers for `ship`, in host order."""
    return [http_status(f"http://{ip}:{ship['http_port']}/primary") for ip in HOSTS.values()]


def unit_status(work: Path, host: str, unit: str) -> dict:
    path = work / host / "run" / "seguro-units" / f"{unit}.status"
    return json.loads(path.read_text()) if path.exists() else {}


def stop_all(work: Path) -> None:
    for unit in ("seguro-zod.service", "seguro-nec.service", "seguro-etcd.service"):
        for host in HOSTS:
            supervisor = work / host / "usr" / "local" / "libexec" / "seguro-unitrun"
            if supervisor.exists():
                state = work / host / "run" / "seguro-units"
                subprocess.run(["python3", supervisor, "stop", unit, "--state", state], capture_output=True,
                               timeout=120)  # fmt: skip


@pytest.fixture
def wheel(tmp_path: Path) -> Path:
    out = tmp_path / "dist"
    subprocess.run([BIN / "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", out, ROOT],
                   check=True, capture_output=True, timeout=300)  # fmt: skip
    return next(out.glob("seguro-*.whl"))


def test_the_playbook_deploys_three_hosts_and_a_second_run_changes_nothing(
    tmp_path: Path, wheel: Path
) -> None:
    inv, ports = inventory(tmp_path)
    extra = playbook_vars(tmp_path, wheel)
    ship, other = json.loads(extra.read_text())["seguro_ships"]
    try:
        started = time.monotonic()
        first = playbook(inv, extra)
        print(f"first run {time.monotonic() - started:.1f} s, changed {recap(first)}")
        assert set(recap(first)) == set(HOSTS) and all(recap(first).values())

        primary = {h: http_status(f"http://{ip}:{ship['http_port']}/primary") for h, ip in HOSTS.items()}
        assert sorted(primary.values()) == [200, 503, 503], primary
        assert sorted(primaries(other)) == [200, 503, 503], "the second ship on the same hosts"
        assert all(http_status(f"http://{ip}:{ship['http_port']}/health") == 200 for ip in HOSTS.values())
        answers_datagrams(ship)
        etcd_takes_only_the_clusters_certificates(tmp_path, ports)
        floating_ip_checks_follow_the_master(tmp_path, ship, primary)
        units_verify(tmp_path)

        started = time.monotonic()
        second = playbook(inv, extra)
        print(f"second run {time.monotonic() - started:.1f} s, changed {recap(second)}")
        assert recap(second) == dict.fromkeys(HOSTS, 0), "the second run changed something"

        rolls_a_changed_setting_out(tmp_path, inv, extra, ship)
        restarts_a_killed_master(tmp_path, ship)
    finally:
        stop_all(tmp_path)


def answers_datagrams(ship: dict) -> None:
    peer = Peer({h: (ip, ship["udp_port"]) for h, ip in HOSTS.items()})
    try:
        for _ in range(50):
            peer.send_one()
        wait_until("50 datagrams answered", lambda: peer.answered() >= 50, timeout_s=30)
        assert not peer.doubles()
    finally:
        peer.close()


def etcd_takes_only_the_clusters_certificates(work: Path, ports: dict[str, dict[str, int]]) -> None:
    """The roles deployed TLS and auth: the play's admin certificate reads the ship; no certificate, or
    plaintext, gets nothing."""
    https = ",".join(f"https://{ip}:{ports[h]['client']}" for h, ip in HOSTS.items())
    pki = work / "pki"
    admin = {"SEGURO_CACERT": str(pki / "ca.pem"), "SEGURO_CERT": str(pki / "admin-all-ansible.pem"),
             "SEGURO_KEY": str(pki / "admin-all-ansible.key")}  # fmt: skip
    bare = {k: v for k, v in os.environ.items() if not k.startswith("SEGURO_")}

    def status(etcd: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run([BIN / "seguro", "status", "--etcd", etcd, "--ship", "zod"], env=env,
                              capture_output=True, text=True, timeout=60)  # fmt: skip

    ok = status(https, {**bare, **admin})
    assert ok.returncode == 0 and "master" in ok.stdout, ok.stderr
    for host in HOSTS:  # each ship's events sealed in etcd under the keyring made on the controller
        keyring = work / host / "etc" / "seguro" / "zod.keys"
        assert keyring.stat().st_mode & 0o777 == 0o600
        assert f'event_keys = "{keyring}"' in (work / host / "etc" / "seguro" / "zod.toml").read_text()
    assert status(https, bare).returncode == 2, "https:// without TLS files is refused"
    assert status(https.replace("https://", "http://"), bare).returncode == 5, "etcd speaks no plaintext"


def floating_ip_checks_follow_the_master(work: Path, ship: dict, primary: dict[str, int]) -> None:
    """keepalived's track script, as rendered on each host, passes only on the master's host."""
    for host in HOSTS:
        conf = (work / host / "etc" / "keepalived" / "keepalived.conf").read_text()
        assert "virtual_ipaddress" in conf and ship["floating_ip"] in conf
        script = re.search(r'script "(/usr/bin/curl [^"]+)"', conf)
        assert script and f"{HOSTS[host]}:{ship['http_port']}/primary" in script.group(1)
        if shutil.which("curl"):
            passed = subprocess.run(script.group(1).split(), capture_output=True, timeout=10).returncode == 0
            assert passed == (primary[host] == 200), host


def units_verify(work: Path) -> None:
    """The rendered units parse cleanly under systemd's own checker, where it is installed."""
    if not shutil.which("systemd-analyze"):
        print("systemd-analyze not installed: unit files not verified")
        return
    units = sorted((work / "h1" / "etc" / "systemd" / "system").glob("*.service"))
    assert len(units) == 3
    done = subprocess.run(["systemd-analyze", "verify", *units], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr


def rolls_a_changed_setting_out(work: Path, inv: Path, extra: Path, ship: dict) -> None:
    """A changed setting restarts every replica, one host at a time (each back before the next goes), and
    the ship has a master and answers afterwards."""
    pids = {h: unit_status(work, h, "seguro-zod.service")["pid"] for h in HOSTS}
    settings = json.loads(extra.read_text())
    settings["seguro_settings"]["snapshot_every"] = 400
    extra.write_text(json.dumps(settings))
    started = time.monotonic()
    third = playbook(inv, extra)
    print(f"third run (a setting changed) {time.monotonic() - started:.1f} s, changed {recap(third)}")
    assert all(recap(third).values())
    assert all(unit_status(work, h, "seguro-zod.service")["pid"] != pids[h] for h in HOSTS), "not restarted"
    configs = [(work / h / "etc" / "seguro" / "zod.toml").read_text() for h in HOSTS]
    assert all("snapshot_every = 400" in config for config in configs)
    assert sorted(primaries(ship)) == [200, 503, 503]
    answers_datagrams(ship)


def restarts_a_killed_master(work: Path, ship: dict) -> None:
    """Restart=on-failure: the SIGKILLed master's node comes back under the supervisor, and a master is
    elected again (the old one or another)."""
    codes = {h: http_status(f"http://{ip}:{ship['http_port']}/primary") for h, ip in HOSTS.items()}
    old = next(h for h, code in codes.items() if code == 200)
    before = unit_status(work, old, "seguro-zod.service")
    os.kill(before["pid"], signal.SIGKILL)

    def back() -> bool:
        now = unit_status(work, old, "seguro-zod.service")
        return now.get("pid") != before["pid"] and now.get("state") == "ready"

    wait_until("the killed replica restarted and ready", back, timeout_s=60)
    wait_until("one master again", lambda: sorted(primaries(ship)) == [200, 503, 503], timeout_s=30)
