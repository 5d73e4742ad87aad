"""`seguro reinit`: a replica rebuilds its log and runtime from its peers, as a new replica would.

The request leaves a marker in the data directory and the node restarts itself; before the log is opened,
the marker moves everything in the data directory aside into `reinit-<time>/` (kept, never deleted: an
operator removes it once the replica has caught up), and the empty log then starts from a peer's snapshot
and the committed log. A crash part way leaves the marker, and the next start finishes the move."""

from __future__ import annotations

import json
import time
from pathlib import Path

from seguro.urbit.pier.layout import fsync_dir  # fsyncs a file as well as a directory

MARKER = "reinit.json"
ASIDE_PREFIX = "reinit-"


def request(data_dir: Path, by: str) -> Path:
    """Ask for a rebuild at the next start; returns where the old data will be kept."""
    aside = data_dir / f"{ASIDE_PREFIX}{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
    tmp = data_dir / (MARKER + ".tmp")
    tmp.write_text(json.dumps({"by": by, "aside": aside.name}))
    fsync_dir(tmp)
    tmp.replace(data_dir / MARKER)
    fsync_dir(data_dir)
    return aside


def reinit_if_asked(data_dir: Path) -> Path | None:
    """Before the log opens: when a rebuild was asked for, move the data directory's contents aside and
    return where to; None when none was."""
    marker = data_dir / MARKER
    if not marker.exists():
        return None
    aside = data_dir / json.loads(marker.read_text())["aside"]
    aside.mkdir(exist_ok=True)
    for entry in sorted(data_dir.iterdir()):
        if entry.name.startswith(ASIDE_PREFIX) or entry.name.startswith(MARKER):
            continue
        entry.rename(aside / entry.name)
    fsync_dir(aside)
    fsync_dir(data_dir)
    marker.unlink()
    fsync_dir(data_dir)
    return aside


def refusal(role: str, registry: dict[str, dict], node_id: str, now_s: float, fresh_s: float = 10.0,
            pending: bool = False) -> str:  # fmt: skip
    """Why this replica must not rebuild now ('' when it may): a master would hand its ship to no one
    prepared, and with no running master there is no one to rebuild from."""
    if pending:
        return "a reinit of this replica is already under way"
    if role in ("master", "promoting"):
        return "this replica is the master: hand the ship over first (seguro switchover --candidate ID)"
    masters = [i for i, st in registry.items() if i != node_id and st.get("role") == "master"
               and now_s - float(st.get("updated_at", 0)) < fresh_s]  # fmt: skip
    return "" if masters else "no running master to rebuild from: reinit needs a healthy ship"
