"""Who may call what on a node's gRPC port, when it serves mutual TLS (node/tls.py).

The TLS handshake already refused a client without a certificate from the cluster's CA. Then each call
is checked against the roles the client's certificate names for this ship: pushing and fetching the log
take a replica's certificate; stepping the master down, reloading, reinit and poking take an admin's;
Status, health and reflection take any certificate from the CA. A refused call ends PERMISSION_DENIED,
is logged with who asked, and never reaches the node."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import grpc

from seguro.node.tls import ADMIN, REPLICA, principals

log = logging.getLogger(__name__)

NEEDS = {
    "/seguro.v1.Replication/Push": REPLICA,
    "/seguro.v1.Replication/Fetch": REPLICA,
    "/seguro.v1.Replication/FetchSnapshot": REPLICA,
}
ADMIN_SERVICE, OPEN_ADMIN = "/seguro.v1.Admin/", {"/seguro.v1.Admin/Status"}
# Every other Admin method takes an admin's certificate (a method added later too: deny by default);
# everything else (Status, health, reflection): any certificate the handshake accepted.


def needs(method: str) -> str | None:
    """The role `method` takes; None: any certificate from the CA."""
    if method.startswith(ADMIN_SERVICE) and method not in OPEN_ADMIN:
        return ADMIN
    return NEEDS.get(method)


class Authorizer(grpc.ServerInterceptor):
    def __init__(self, ship: str) -> None:
        self.ship = ship

    def intercept_service(self, continuation: Callable, details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(details)
        role = needs(details.method)
        if handler is None or role is None:
            return handler
        kind = ("stream" if handler.request_streaming else "unary") + "_" + (
            "stream" if handler.response_streaming else "unary")  # fmt: skip
        behavior = getattr(handler, kind)

        def checked(request: Any, context: grpc.ServicerContext) -> Any:
            self.check(context, details.method, role)
            return behavior(request, context)

        return handler._replace(**{kind: checked})

    def check(self, context: grpc.ServicerContext, method: str, role: str) -> None:
        found = principals(context)
        if any(p.may(self.ship, role) for p in found):
            return
        names = [f"{p.ship}/{p.role}/{p.name}" for p in found] or ["no seguro:// name"]
        log.warning("call refused", extra={"method": method, "needs": f"{self.ship}/{role}", "peer": names,
                                           "address": context.peer()})  # fmt: skip
        context.abort(grpc.StatusCode.PERMISSION_DENIED, f"{method} needs a {role} certificate of ship "
                      f"{self.ship}; this one names {', '.join(names)}")  # fmt: skip
