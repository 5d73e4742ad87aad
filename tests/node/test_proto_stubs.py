"""The generated gRPC stubs under seguro/proto/ must match proto/ (regenerate with scripts/gen_proto.sh), and
the .proto shipped beside them in the wheel is proto/'s own, through a symlink."""

import filecmp
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_stubs_are_fresh(tmp_path: Path) -> None:
    subprocess.run(
        ["bash", str(ROOT / "scripts/gen_proto.sh"), str(tmp_path)],
        check=True,
        env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"},
    )
    generated = ROOT / "seguro/proto/seguro/v1"
    for name in ["replication_pb2.py", "replication_pb2.pyi", "replication_pb2_grpc.py"]:
        assert filecmp.cmp(tmp_path / "seguro/v1" / name, generated / name, shallow=False), (
            f"{name} is stale: run `bash scripts/gen_proto.sh`"
        )
    shipped = generated / "replication.proto"  # package data: the one source, through a symlink
    source = ROOT / "proto/seguro/v1/replication.proto"
    assert shipped.is_symlink() and filecmp.cmp(shipped, source, shallow=False)
