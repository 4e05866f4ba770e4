"""The gRPC service's registration with Ray Serve's proxy: the generated one, with forgiving request parsing.

The proxy parses each request with the method's ``request_deserializer`` before any code of ours
runs. With the generated ``FromString``, bytes that are not a valid message — invalid UTF-8 in a
string field (which protobuf refuses), a truncated message, not protobuf at all — make grpcio answer
``UNKNOWN`` ("Exception deserializing request"), a status the API does not document. Here the
deserializer turns such bytes into an :class:`UndecodableRequest`, which the proxy forwards like any
request and the gateway answers with ``INVALID_ARGUMENT`` naming the message type.

Named in the Serve config as ``grpc_servicer_functions`` (see :data:`~matconcept.service.app.settings.GRPC_SERVICER`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc

from matconcept.service.app.rpc import matconcept_pb2 as pb

logger = logging.getLogger(__name__)

SERVICE = "matconcept.v1.Matconcept"


@dataclass(frozen=True)
class UndecodableRequest:
    """Request bytes that are not a valid ``message_type`` (pickled to the gateway as they are)."""

    message_type: str
    size: int
    detail: str

    def message(self) -> str:
        return f"request: {self.size} bytes that are not a valid {self.message_type} ({self.detail})"


def forgiving(message_class: type) -> Callable[[bytes], Any]:
    """``message_class.FromString``, or an :class:`UndecodableRequest` when the bytes do not parse."""
    name = message_class.DESCRIPTOR.full_name

    def deserialize(data: bytes) -> Any:
        try:
            return message_class.FromString(data)
        except Exception as exc:  # DecodeError (invalid UTF-8, truncation...), or anything protobuf raises
            detail = str(exc) or type(exc).__name__
            return UndecodableRequest(name, len(data), detail[:200])

    return deserialize


def add_MatconceptServicer_to_server(servicer: Any, server: Any) -> None:
    """What ``matconcept_pb2_grpc.add_MatconceptServicer_to_server`` does, with :func:`forgiving` deserializers."""
    service = pb.DESCRIPTOR.services_by_name["Matconcept"]
    handlers = {
        method.name: grpc.unary_unary_rpc_method_handler(
            getattr(servicer, method.name),
            request_deserializer=forgiving(getattr(pb, method.input_type.name)),
            response_serializer=getattr(pb, method.output_type.name).SerializeToString,
        )
        for method in service.methods
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    server.add_registered_method_handlers(SERVICE, handlers)
