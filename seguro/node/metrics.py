"""The node's Prometheus metrics (served at `GET /metrics`, prometheus-client's text format).

Most figures are read from the node's status at scrape time (a collector), so the hot paths carry no
instrumentation; the commit latency and batch sizes are histograms observed as each commit returns.
Names follow Prometheus' conventions: `seguro_` prefix, units last, counters ending in `_total`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

ROLES = ("waiting", "follower", "candidate", "promoting", "master", "stopped")
_GAUGES = {  # status key -> (metric, help)
    "epoch": ("seguro_epoch", "Fencing epoch this replica serves under, or the highest it has seen"),
    "lease_remaining_s": ("seguro_lease_remaining_seconds", "Time left on this replica's etcd lease"),
    "durable_event": ("seguro_durable_event", "Last event in this replica's local log"),
    "applied_event": ("seguro_applied_event", "Last event its runtime has applied"),
    "committed_event": ("seguro_committed_event", "Last event this replica knows is committed in etcd"),
    "snapshot_event": ("seguro_snapshot_event", "Event of the runtime snapshot this replica keeps"),
}
_COUNTERS = {  # status key -> (metric without _total, help)
    "effects_sent": ("seguro_effects_sent", "Effects sent by this replica while master"),
    "effects_fenced": ("seguro_effects_fenced", "Effects held back at the deadline gate"),
    "effects_released": ("seguro_effects_released", "Effects released after their commit and acks"),
    "effects_discarded": ("seguro_effects_discarded", "Effects of run-ahead thrown away by a fence"),
    "dropped": ("seguro_datagrams_dropped", "Datagrams dropped because this replica is not the master"),
    "refused": ("seguro_events_refused", "Events refused (too large, or refused by the runtime)"),
    "datagrams_shed": ("seguro_datagrams_shed", "Datagrams shed at a full queue"),
    "datagrams_malformed": ("seguro_datagrams_malformed", "Datagrams that were not Ames packets"),
    "effects_send_errors": ("seguro_effects_send_errors", "Effects the socket would not send"),
    "peer_refusals": ("seguro_peer_refusals", "Pushes or fetches refused from peers"),
    "pushes_refused": ("seguro_pushes_refused", "Pushed batches refused by this follower"),
}
_LABELLED = {  # status key -> (metric without _total, label, help)
    "effects_unserved": ("seguro_effects_unserved", "kind", "Effects of drivers this node does not serve"),
    "datagrams_filtered": ("seguro_datagrams_filtered", "reason", "Datagrams vere never makes events of"),
    "scry": ("seguro_scry_requests", "outcome", "Remote scry and STUN requests, by outcome"),
}


class StatusCollector(Collector):
    """Gauges and counters from the node's status dict, read when Prometheus scrapes."""

    def __init__(self, status: Callable[[], dict[str, object]]) -> None:
        self._status = status

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        status = self._status()
        role = GaugeMetricFamily("seguro_role", "1 for the role this replica is in", labels=["role"])
        for name in ROLES:
            role.add_metric([name], 1.0 if status.get("role") == name else 0.0)
        yield role
        committed, durable = _number(status.get("committed_event")), _number(status.get("durable_event"))
        yield GaugeMetricFamily("seguro_lag_events", "Committed events not yet in the local log",
                                value=max(0.0, committed - durable))  # fmt: skip
        for key, (name, text) in _GAUGES.items():
            if key in status:
                yield GaugeMetricFamily(name, text, value=_number(status[key]))
        for key, (name, text) in _COUNTERS.items():
            if key in status:
                yield CounterMetricFamily(name, text, value=_number(status[key]))
        for key, (name, label, text) in _LABELLED.items():
            values = status.get(key) or {}
            family = CounterMetricFamily(name, text, labels=[label])
            for what, count in values.items() if isinstance(values, dict) else ():
                family.add_metric([str(what)], _number(count))
            yield family


def _number(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0


class NodeMetrics:
    """One node's registry: the status collector and the commit histograms."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, status: Callable[[], dict[str, object]]) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(StatusCollector(status))
        self.commit_latency = Histogram(
            "seguro_commit_latency_seconds", "Fenced etcd append of one batch, request to answer",
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0),
            registry=self.registry,
        )  # fmt: skip
        self.batch_events = Histogram(
            "seguro_batch_events", "Events in each committed batch",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000), registry=self.registry,
        )  # fmt: skip
        self.batch_bytes = Histogram(
            "seguro_batch_bytes", "Record bytes in each committed batch",
            buckets=(1e3, 1e4, 1e5, 3e5, 6e5, 1.2e6, 1.6e7, 6.4e7), registry=self.registry,
        )  # fmt: skip
        self.commit_failures = Counter(
            "seguro_commit_failures",
            "Fenced etcd appends that failed or were refused",
            registry=self.registry,
        )

    def committed(self, latency_s: float, events: int, size_bytes: int, ok: bool) -> None:
        """A commit returned (from the etcd worker thread)."""
        self.commit_latency.observe(latency_s)
        if ok:
            self.batch_events.observe(events)
            self.batch_bytes.observe(size_bytes)
        else:
            self.commit_failures.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
