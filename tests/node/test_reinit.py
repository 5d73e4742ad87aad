"""seguro reinit's data-directory move: everything goes aside (kept), a crash part way is finished at the
next start, and the refusals: never on the master, never without a running master to rebuild from."""

from __future__ import annotations

from pathlib import Path

from seguro.node import reinit


def data_dir(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    (data / "log").mkdir(parents=True)
    (data / "log" / "CURRENT").write_text("x")
    (data / "pier").mkdir()
    (data / "runtime.log").write_text("y")
    return data


def test_nothing_asked_nothing_moved(tmp_path: Path) -> None:
    data = data_dir(tmp_path)
    assert reinit.reinit_if_asked(data) is None
    assert sorted(p.name for p in data.iterdir()) == ["log", "pier", "runtime.log"]


def test_the_old_data_goes_aside_whole_and_a_crash_part_way_is_finished(tmp_path: Path) -> None:
    data = data_dir(tmp_path)
    aside = reinit.request(data, "ops@host")
    (aside).mkdir()
    (data / "pier").rename(aside / "pier")  # a crash after the first move
    assert reinit.reinit_if_asked(data) == aside
    assert sorted(p.name for p in data.iterdir()) == [aside.name]
    assert sorted(p.name for p in aside.iterdir()) == ["log", "pier", "runtime.log"]
    assert (aside / "log" / "CURRENT").read_text() == "x"
    assert reinit.reinit_if_asked(data) is None, "the marker is gone once done"


def test_refused_on_the_master_and_without_a_running_master() -> None:
    now_s = 1000.0
    master = {"role": "master", "updated_at": now_s - 1}
    assert "is the master" in reinit.refusal("master", {"n1": master}, "n1", now_s)
    assert "is the master" in reinit.refusal("promoting", {"n2": master}, "n1", now_s)
    assert "no running master" in reinit.refusal("follower", {}, "n1", now_s)
    stale = {"role": "master", "updated_at": now_s - 60}
    assert "no running master" in reinit.refusal("follower", {"n2": stale}, "n1", now_s)
    assert reinit.refusal("follower", {"n2": master}, "n1", now_s) == ""
    assert "already under way" in reinit.refusal("follower", {"n2": master}, "n1", now_s, pending=True)
