"""The HTTP endpoint's decisions (pure), a real server answering them, and /metrics in Prometheus' format."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from seguro.node.http import HttpEndpoint, Probe, answer
from seguro.node.metrics import NodeMetrics

MASTER = Probe("master", 7, 100, 100)
FOLLOWER = Probe("follower", 7, 90, 100)


@pytest.mark.parametrize(
    ("path", "probe", "status"),
    [
        ("/health", MASTER, 200),
        ("/health", FOLLOWER, 200),
        ("/health", Probe("stopped", 0, 99, 100, error="divergence at event 100"), 503),
        ("/health", Probe("follower", 0, 99, 100, stopping=True), 503),
        ("/primary", MASTER, 200),
        ("/primary", FOLLOWER, 503),
        ("/primary", Probe("master", 7, 100, 100, stopping=True), 503),
        ("/replica", FOLLOWER, 200),  # 10 behind, within the default bound
        ("/replica?lag=5", FOLLOWER, 503),
        ("/replica?lag=10", FOLLOWER, 200),
        ("/replica", MASTER, 503),
        ("/replica", Probe("promoting", 7, 100, 100), 503),
        ("/replica?lag=ten", FOLLOWER, 400),
        ("/nothing", MASTER, 404),
    ],
)
def test_what_each_endpoint_answers(path: str, probe: Probe, status: int) -> None:
    code, kind, body = answer(path, probe, replica_max_lag=1000)
    assert code == status and kind == "application/json"
    json.loads(body)


def test_a_stopped_replica_says_why() -> None:
    _, _, body = answer("/health", Probe("stopped", 0, 99, 100, error="divergence at event 100"), 1000)
    assert json.loads(body)["reason"] == "divergence at event 100"


def test_a_real_server_answers_and_metrics_parse() -> None:
    status = {"role": "master", "epoch": 7, "durable_event": 100, "applied_event": 100,
              "committed_event": 100, "lease_remaining_s": 2.1, "effects_sent": 42, "dropped": 3,
              "effects_unserved": {"blit": 2},
              "datagrams_filtered": {"stun": 1}, "scry": {"answered": 5}, "snapshot_event": 50}  # fmt: skip
    metrics = NodeMetrics(lambda: status)
    metrics.committed(0.004, 10, 2000, ok=True)
    metrics.committed(0.5, 3, 600, ok=False)
    endpoint = HttpEndpoint(("127.0.0.1", 0), lambda: MASTER, metrics.render, 1000, metrics.content_type)
    try:
        base = f"http://{endpoint.address}"
        with urllib.request.urlopen(f"{base}/primary", timeout=5) as reply:
            assert reply.status == 200 and json.loads(reply.read())["role"] == "master"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{base}/replica", timeout=5)
        assert refused.value.code == 503
        with urllib.request.urlopen(f"{base}/metrics", timeout=5) as reply:
            text = reply.read().decode()
    finally:
        endpoint.close()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}  # fmt: skip
    assert samples[("seguro_role", (("role", "master"),))] == 1.0
    assert samples[("seguro_role", (("role", "follower"),))] == 0.0
    assert samples[("seguro_effects_sent_total", ())] == 42.0
    assert samples[("seguro_datagrams_dropped_total", ())] == 3.0
    assert samples[("seguro_effects_unserved_total", (("kind", "blit"),))] == 2.0
    assert samples[("seguro_lease_remaining_seconds", ())] == 2.1
    assert samples[("seguro_commit_latency_seconds_count", ())] == 2.0
    assert samples[("seguro_batch_events_count", ())] == 1.0  # only the commit that succeeded
    assert samples[("seguro_commit_failures_total", ())] == 1.0
    assert samples[("seguro_lag_events", ())] == 0.0
