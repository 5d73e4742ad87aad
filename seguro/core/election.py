"""Who may campaign for the master key: Raft's up-to-date rule, made with the positions replicas publish.

A replica back on an empty disk must not win the coin toss against an up-to-date one and then spend hours
catching up while holding the key. So a replica defers to any fresh, electable peer whose published log
is longer (or as long, with a higher `failover_priority`, Patroni's name). `nofailover` replicas never
campaign. Deferring is bounded by a grace delay: if the master key stays empty that long, the better
peers are not taking over (their runtime is down, say), and a lone survivor must still serve.
Positions are what replicas last published (about once a second); safety never rests on them, only
who serves first does: the fenced appends and the catch-up keep any winner's log exact.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PeerView:
    """Another replica as its last published status shows it. `fresh`: it published lately, as judged
    by the observer's own clock (a peer that stopped publishing is away, whatever it last said)."""

    replica_id: str
    durable_event: int
    fresh: bool
    nofailover: bool = False
    failover_priority: int = 1


@dataclass(frozen=True)
class Candidacy:
    """This replica's standing: its log's end and its failover settings."""

    replica_id: str
    durable_event: int
    nofailover: bool = False
    failover_priority: int = 1


def better_peers(me: Candidacy, peers: tuple[PeerView, ...]) -> list[str]:
    """Fresh, electable peers that should serve before `me`: a longer log, or as long with a higher
    priority. Equal logs and priorities: nobody defers (the first to campaign wins)."""
    return sorted(
        p.replica_id
        for p in peers
        if p.replica_id != me.replica_id
        and p.fresh
        and not p.nofailover
        and (p.durable_event, p.failover_priority) > (me.durable_event, me.failover_priority)
    )


def why_not_campaign(me: Candidacy, peers: tuple[PeerView, ...], key_absent_s: float, grace_s: float) -> str:
    """'' when `me` may campaign now, the master key having been empty for `key_absent_s`; else why not."""
    if me.nofailover:
        return "nofailover is set"
    better = better_peers(me, peers)
    if better and key_absent_s < grace_s:
        return f"deferring to {', '.join(better)} (further ahead or preferred) for up to {grace_s} s"
    return ""


class Elector:
    """When this replica asks for the master key: one campaign in flight, retries spaced, a hold-off after
    stepping down, and the up-to-date rule above while the key is empty. The caller checks what is not
    about positions (role, lease, runtime)."""

    def __init__(self, retry_s: float, grace_s: float) -> None:
        self.retry_s, self.grace_s = retry_s, grace_s
        self.inflight = False
        self.peers: tuple[PeerView, ...] = ()
        self.why_not = ""  # why the last chance to campaign was passed up, for status
        self.paused = ""  # maintenance mode, by whom: no automatic failover
        self.candidate = ""  # a switchover or failover names the one replica that may campaign
        self._last_s = float("-inf")
        self._hold_off_until_s = float("-inf")
        self._key_absent_since_s: float | None = None

    def _operator_says(self, me: Candidacy) -> str:
        """Why an operator's control keeps this replica from campaigning ('' when none does). A named
        candidate overrides the pause: `seguro failover --candidate` is how a paused ship is served."""
        if self.candidate:
            mine = self.candidate == me.replica_id
            return "" if mine else f"the operator hands the ship to {self.candidate}"
        if self.paused:
            return f"paused by {self.paused}: no automatic failover (`seguro resume`)"
        return ""

    def key_seen(self, holder: str | None, now_s: float) -> None:
        """The master key as observed: the grace delay counts from when it was first seen empty."""
        if holder is not None:
            self._key_absent_since_s = None
        elif self._key_absent_since_s is None:
            self._key_absent_since_s = now_s

    def hold_off(self, until_s: float) -> None:
        """Let others win first (after a step-down, or a promotion that took too long). Published in the
        replica's status, so that others do not defer to it meanwhile (else it would win again)."""
        self._hold_off_until_s = max(self._hold_off_until_s, until_s)

    def holding_off(self, now_s: float) -> bool:
        return now_s < self._hold_off_until_s

    def due(self, me: Candidacy, now_s: float) -> bool:
        """Campaign now? Marks one in flight when so."""
        if self.inflight or self._key_absent_since_s is None:
            return False
        if now_s < self._hold_off_until_s or now_s - self._last_s < self.retry_s:
            return False
        self.why_not = self._operator_says(me) or why_not_campaign(
            me, self.peers, now_s - self._key_absent_since_s, self.grace_s
        )
        if self.why_not:
            return False
        self.inflight, self._last_s = True, now_s
        return True
