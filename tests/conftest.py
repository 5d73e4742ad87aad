"""Shared pytest fixtures. etcd: real local clusters on 127.0.0.1, always stopped after the test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from seguro.node.etcd.coordinator import Coordinator, Genesis
from seguro.ops.etcd_server import EtcdCluster

# A ship's genesis for adapter tests that campaign on an empty log (`seguro ship create` would also write
# the ship's first batch): campaigns compare the genesis inside their Txn.
BARE_GENESIS = Genesis("0" * 32, "~zod", "tests", "2026-12-01T00:00:00+00:00")


def put_bare_genesis(endpoints: str | list[str], ship: str) -> Genesis:
    """Write only the genesis key of `ship`, leaving its log empty."""
    with Coordinator(endpoints, ship) as coord:
        coord.seal_genesis(BARE_GENESIS, 0)  # as an import of an empty log would
    return BARE_GENESIS


def _cluster(workdir: Path, members: int) -> Iterator[EtcdCluster]:
    cluster = EtcdCluster(workdir, members=members, token=f"test-{workdir.name}")
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@pytest.fixture
def etcd1(tmp_path: Path) -> Iterator[EtcdCluster]:
    """A fresh 1-member etcd cluster (about 1 s to start)."""
    yield from _cluster(tmp_path / "etcd1", 1)


@pytest.fixture
def etcd3(tmp_path: Path) -> Iterator[EtcdCluster]:
    """A fresh 3-member etcd cluster; tests may kill, pause and restart members."""
    yield from _cluster(tmp_path / "etcd3", 3)
