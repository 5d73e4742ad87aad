"""`seguro log verify|dump` through click's CliRunner on real RocksDB logs, and once as a real process."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import rocksdict
from click.testing import CliRunner

from seguro.cli import main
from seguro.cli.log import describe, lane_text, noun_text
from seguro.node.eventlog import EventLog, event_key
from seguro.urbit.noun import Noun, cord, from_list, jam

REPO = Path(__file__).resolve().parents[2]
DA_UNIX_EPOCH_S = 0x8000000CCE9E0D80
T0_UNIX_S = 1_700_000_000  # 2023-11-14T22:13:20Z


def da(unix_s: int, half_second: bool = False) -> int:
    """A @da: high 64 bits seconds since the Urbit epoch, low 64 bits the fraction (0.5 s = 1 << 63)."""
    return ((unix_s + DA_UNIX_EPOCH_S) << 64) | ((1 << 63) if half_second else 0)


def path(*parts: str) -> Noun:
    return from_list(cord(part) for part in parts)


def hear(unix_s: int, packet: bytes) -> Noun:
    lane = (1, (31337 << 32) | 0x7F000001)  # [%| address]: 127.0.0.1:31337
    blob = int.from_bytes(packet, "little")
    return (da(unix_s), (path("a", "ames"), (cord("hear"), (lane, blob))))


def value(noun: Noun, mug: int = 0xABCDEF) -> bytes:
    return mug.to_bytes(4, "little") + jam(noun)


def make_log(data_dir: Path, nouns: list[Noun]) -> None:
    with EventLog(data_dir) as log:
        log.append(1, [value(noun) for noun in nouns])


def sample_events() -> list[Noun]:
    boot = (2, (0, 3))  # a formula: no timestamp
    wake = (da(T0_UNIX_S + 1, half_second=True), (path("b", "behn"), (cord("wake"), 0)))
    return [boot, hear(T0_UNIX_S, b"\x01" * 600), wake]


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["log", *args])
    return result.exit_code, result.output


def test_verify_ok_is_one_line(tmp_path: Path) -> None:
    make_log(tmp_path, sample_events())
    code, out = run("verify", "--data", str(tmp_path))
    assert code == 0
    assert len(out.splitlines()) == 1 and out.startswith("ok: events 1..3 (3 records, ")
    code, out = run("verify", "--data", str(tmp_path), "--json")
    assert code == 0 and json.loads(out) | {"total_bytes": 0} == {
        "ok": True,
        "first_event": 1,
        "last_event": 3,
        "count": 3,
        "total_bytes": 0,
        "epochs": 0,
        "problems_total": 0,
        "problems": [],
    }


def test_verify_names_gap_and_corrupt_record(tmp_path: Path) -> None:
    make_log(tmp_path, sample_events())
    db = rocksdict.Rdict(
        str(tmp_path / "log"), rocksdict.Options(raw_mode=True), {"meta": rocksdict.Options(raw_mode=True)}
    )
    db[event_key(2)] = b"\x00\x00\x00\x00\xff\xff"
    db[event_key(7)] = value(0)
    db.close()
    code, out = run("verify", "--data", str(tmp_path))
    assert code == 1
    assert "corrupt record at 2: " in out and "gap at 4: events 4..6 missing" in out
    code, out = run("verify", "--data", str(tmp_path), "--json")
    report = json.loads(out)
    assert code == 1 and not report["ok"]
    assert [(p["kind"], p["event"]) for p in report["problems"]] == [("corrupt", 2), ("gap", 4)]


def test_missing_log_is_a_clear_error(tmp_path: Path) -> None:
    code, out = run("verify", "--data", str(tmp_path / "absent"))
    assert code != 0 and "no event log at" in out and "Traceback" not in out


def test_dump_renders_time_wire_tag_and_lane(tmp_path: Path) -> None:
    make_log(tmp_path, sample_events())
    code, out = run("dump", "--data", str(tmp_path))
    lines = out.splitlines()
    assert code == 0 and len(lines) == 3
    assert lines[0] == "1 00abcdef [2 0 3]"
    assert lines[1] == (
        "2 00abcdef 2023-11-14T22:13:20.000000Z /a/ames %hear lane=127.0.0.1:31337 packet=600B"
    )
    assert lines[2] == "3 00abcdef 2023-11-14T22:13:21.500000Z /b/behn %wake 0"
    code, out = run("dump", "--data", str(tmp_path), "--from", "2", "--to", "2", "--json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(rows) == 1
    assert rows[0]["event"] == 2 and rows[0]["tag"] == "hear" and rows[0]["packet_bytes"] == 600


def test_dump_marks_corrupt_records_and_fails(tmp_path: Path) -> None:
    make_log(tmp_path, sample_events())
    db = rocksdict.Rdict(
        str(tmp_path / "log"), rocksdict.Options(raw_mode=True), {"meta": rocksdict.Options(raw_mode=True)}
    )
    db[event_key(3)] = b"\x07"
    db.close()
    code, out = run("dump", "--data", str(tmp_path))
    assert code == 1
    assert out.splitlines()[2].startswith("3 CORRUPT ")
    assert "could not be decoded" in out


def test_rendering_is_bounded_for_any_noun() -> None:
    deep: Noun = 0
    for index in range(50_000):
        deep = (deep, index) if index % 2 else (index, deep)
    assert len(noun_text(deep)) <= 161
    assert noun_text(2**4000).endswith("…(501 bytes)")
    assert noun_text((cord("hello world"), (cord("x-y"), 65))) == "['hello world' %x-y 65]"
    assert describe((da(T0_UNIX_S), 5)) == {"time": "2023-11-14T22:13:20.000000Z", "noun": "5"}
    assert describe((da(T0_UNIX_S), (path("x"), 7))) == {
        "time": "2023-11-14T22:13:20.000000Z",
        "wire": "/x",
        "noun": "7",
    }
    assert describe(2**200)["noun"].startswith("0x")
    assert lane_text((0, 1)) == "galaxy 1" and lane_text(2**60) == hex(2**60)


def test_real_process_verify_beside_a_running_writer(tmp_path: Path) -> None:
    make_log(tmp_path, sample_events())
    with EventLog(tmp_path) as writer:  # holds the RocksDB LOCK, like a running node
        writer.append(4, [value(0)])
        done = subprocess.run(
            [str(REPO / ".venv" / "bin" / "seguro"), "log", "verify", "--data", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok: events 1..4 (4 records")


def _damaged_log(data: Path) -> None:
    """2,000 events, then 64 bytes of garbage in the middle of the SST file that holds them."""
    with EventLog(data) as log:
        for first in range(1, 2001, 100):
            log.append(first, [value(hear(T0_UNIX_S + first, b"x" * 900))] * 100)
    db = rocksdict.Rdict(str(data / "log"), rocksdict.Options(raw_mode=True),
                         {"meta": rocksdict.Options(raw_mode=True)})  # fmt: skip
    db.flush()
    db.close()
    sst = max((data / "log").glob("*.sst"), key=lambda file: file.stat().st_size)
    with sst.open("r+b") as file:
        file.seek(sst.stat().st_size // 2)
        file.write(b"\xff" * 64)


def test_dump_of_damaged_storage_says_so_instead_of_a_traceback(tmp_path: Path) -> None:
    _damaged_log(tmp_path)
    result = CliRunner().invoke(main, ["log", "dump", "--data", str(tmp_path)])
    assert result.exit_code == 1 and "storage error" in result.output and "seguro log verify" in result.output
    assert isinstance(result.exception, SystemExit)  # a clean exit, not a traceback


def test_a_damaged_manifest_is_a_clear_error(tmp_path: Path) -> None:
    with EventLog(tmp_path) as log:
        log.append(1, [value(0)])
    (tmp_path / "log" / "CURRENT").write_text("MANIFEST-999999\n")
    for command in ("verify", "dump"):
        result = CliRunner().invoke(main, ["log", command, "--data", str(tmp_path)])
        assert result.exit_code == 1 and "cannot open event log" in result.output, result.output


def test_bad_ranges_and_counts_are_usage_errors(tmp_path: Path) -> None:
    with EventLog(tmp_path) as log:
        log.append(1, [value(0)])
    runner = CliRunner()
    result = runner.invoke(main, ["log", "dump", "--data", str(tmp_path), "--from", "5", "--to", "2"])
    assert result.exit_code == 2 and "--from 5 is after --to 2" in result.output
    result = runner.invoke(main, ["log", "verify", "--data", str(tmp_path), "--max-problems", "0"])
    assert result.exit_code == 2
