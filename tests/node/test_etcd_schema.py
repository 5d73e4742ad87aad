"""Pure rules of the etcd adapter, without etcd."""

from __future__ import annotations

from pyetcd import etcdrpc

from seguro.node.etcd.schema import unconfirmed_renewal


def header(member_id: int, raft_term: int) -> etcdrpc.ResponseHeader:
    return etcdrpc.ResponseHeader(member_id=member_id, raft_term=raft_term, revision=7)


def test_a_renewal_counts_only_when_the_quorum_read_comes_from_the_same_member_and_term() -> None:
    assert unconfirmed_renewal(header(0xA, 4), header(0xA, 4)) is None
    later_term = unconfirmed_renewal(header(0xA, 4), header(0xA, 5))
    assert later_term == "the renewal came from member a in term 4, the quorum read from member a in term 5"
    other_member = unconfirmed_renewal(header(0xA, 4), header(0xB, 4))  # the client moved on: not known
    assert other_member == "the renewal came from member a in term 4, the quorum read from member b in term 4"
