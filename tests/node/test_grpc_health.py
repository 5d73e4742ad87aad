"""Every node's gRPC port also serves the standard health service (grpc_health_probe, load balancers) and
server reflection (grpcurl). Neither reaches the node: the stand-in below fails any call that does."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from seguro.node.services import health_of, serve, set_serving
from seguro.proto.seguro.v1 import replication_pb2 as pb

MAX_MESSAGE_BYTES = 1 << 20
SEGURO_SERVICES = ["seguro.v1.Replication", "seguro.v1.Admin"]
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class UntouchedNode:
    """A NodeHandle that no health or reflection call may use."""

    node_id = "n1"

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"health and reflection must not reach the node (they used {name!r})")


@pytest.fixture
def node_server() -> Iterator[tuple[grpc.Server, grpc.Channel]]:
    server, port = serve(UntouchedNode(), "127.0.0.1:0", MAX_MESSAGE_BYTES)  # type: ignore[arg-type]
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield server, channel
    finally:
        channel.close()
        server.stop(0).wait(5)


def check(channel: grpc.Channel, service: str) -> int:
    return (
        health_pb2_grpc.HealthStub(channel)
        .Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        .status
    )


def reflect(
    channel: grpc.Channel, request: reflection_pb2.ServerReflectionRequest
) -> reflection_pb2.ServerReflectionResponse:
    (response,) = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
        iter([request]), timeout=10
    )
    return response


def test_the_server_and_each_seguro_service_are_serving(node_server) -> None:
    _, channel = node_server
    assert {name: check(channel, name) for name in ["", *SEGURO_SERVICES]} == {
        name: SERVING for name in ["", *SEGURO_SERVICES]
    }
    with pytest.raises(grpc.RpcError) as unknown:
        check(channel, "seguro.v1.NoSuchService")
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


def test_a_stopping_node_reports_not_serving_and_watchers_hear_it(node_server) -> None:
    server, channel = node_server
    watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""), timeout=10)
    try:
        assert next(watch).status == SERVING
        set_serving(health_of(server), False)
        assert next(watch).status == NOT_SERVING
    finally:
        watch.cancel()
    assert [check(channel, name) for name in ["", *SEGURO_SERVICES]] == [NOT_SERVING] * 3
    set_serving(health_of(server), True)
    assert [check(channel, name) for name in ["", *SEGURO_SERVICES]] == [SERVING] * 3


def test_reflection_lists_seguro_health_and_reflection(node_server) -> None:
    _, channel = node_server
    response = reflect(channel, reflection_pb2.ServerReflectionRequest(list_services=""))
    listed = {service.name for service in response.list_services_response.service}
    assert listed == {*SEGURO_SERVICES, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"}


def test_reflection_serves_the_replication_proto(node_server) -> None:
    _, channel = node_server
    for request in (
        reflection_pb2.ServerReflectionRequest(file_by_filename="seguro/v1/replication.proto"),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="seguro.v1.Admin"),
    ):
        response = reflect(channel, request)
        assert not response.HasField("error_response"), response.error_response.error_message
        files = [
            descriptor_pb2.FileDescriptorProto.FromString(raw)
            for raw in response.file_descriptor_response.file_descriptor_proto
        ]
        replication = next(f for f in files if f.name == "seguro/v1/replication.proto")
        assert replication.package == "seguro.v1"
        assert {s.name for s in replication.service} == {"Replication", "Admin"}
        assert replication.SerializeToString() == pb.DESCRIPTOR.serialized_pb
