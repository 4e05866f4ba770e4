"""Remote store: a Qdrant server or cluster through qdrant-client over gRPC (``QDRANT_URL``).

Kept thin on purpose: the client's own models, the same collection layout, payload indexes and
filters as :mod:`matconcept.service.store.edge`, so the two engines are interchangeable (see the congruence
tests, which run when ``QDRANT_URL`` is set; ``deploy/docker-compose.yml`` starts a server).
"""

from __future__ import annotations

import logging
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from matconcept.service.store.base import (
    ACORN_MAX_SELECTIVITY,
    INTEGER_INDEXES,
    KEYWORD_INDEXES,
    QUANTIZATION_OVERSAMPLING,
    QUANTIZATION_QUANTILE,
    StoreError,
    VectorName,
    VectorStore,
    build_filter,
    check_using,
    check_vector,
    filtered_plan,
    point_vectors,
    vector_sizes,
)
from matconcept.service.store.hybrid import HYBRID_NOTIONS
from matconcept.service.store.payload import point_id_for
from matconcept.service.store.peaks import PEAK_FIELDS
from matconcept.service.store.records import VECTOR_NAMES, Hit, MaterialPayload, PointIn, SearchFilters
from matconcept.service.store.structures import STRUCTURE_FIELDS

logger = logging.getLogger(__name__)

HNSW_EF = 128
"""Candidates per HNSW query (as in the embedded store)."""
TIMEOUT_S = 60


class RemoteStore(VectorStore):
    """A collection on a Qdrant server, created on first use with the embedded store's layout.

    Args:
        url: Server URL (``http://host:6333``; gRPC on 6334 is used for data).
        collection: Collection name (one per model id).
        model_id: The model whose vectors it holds.
        dim: Vector dimension.
        api_key: Server API key, if any.
        structure_dim: The structure-type vector's dimension (a third named vector in a new collection).
        scalar_quantization: int8 copies in RAM for the graph walk, originals on disk for rescoring
            (as :class:`~matconcept.service.store.edge.EdgeStore`); set when the collection is created.
    """

    engine = "qdrant-server"

    def __init__(
        self,
        url: str,
        collection: str,
        model_id: str,
        dim: int = 1024,
        api_key: str | None = None,
        *,
        structure_dim: int | None = None,
        scalar_quantization: bool = False,
    ) -> None:
        from qdrant_client import QdrantClient, models

        self.url, self.collection, self.model_id, self.dim = url, collection, model_id, int(dim)
        self.scalar_quantization = scalar_quantization
        self.structure_dim = structure_dim
        self._api_key = api_key
        self._m = models
        self._models = SimpleNamespace(
            Filter=models.Filter,
            FieldCondition=models.FieldCondition,
            MatchValue=models.MatchValue,
            MatchAny=models.MatchAny,
            Range=models.Range,
        )
        self.client = QdrantClient(url=url, api_key=api_key, prefer_grpc=True, timeout=TIMEOUT_S)
        self._ensure_collection()

    def _ensure_collection(self) -> None:
        m = self._m
        if self.client.collection_exists(self.collection):
            info = self.client.get_collection(self.collection)
            vectors = info.config.params.vectors
            sizes = {name: v.size for name, v in vectors.items()} if isinstance(vectors, dict) else {}
            # A collection made before the fingerprint vector existed keeps its two vectors.
            if {name: sizes.get(name) for name in VECTOR_NAMES} != dict.fromkeys(VECTOR_NAMES, self.dim):
                raise StoreError(f"collection {self.collection} has vectors {sizes}, expected {self.dim}-d crystal/xrd")
            self.sizes = sizes
            self.scalar_quantization = info.config.quantization_config is not None
        else:
            self.sizes = vector_sizes(self.dim, self.structure_dim)
            self.client.create_collection(
                self.collection,
                vectors_config={
                    name: m.VectorParams(size=n, distance=m.Distance.EUCLID, on_disk=self.scalar_quantization or None)
                    for name, n in self.sizes.items()
                },
                quantization_config=(
                    m.ScalarQuantization(
                        scalar=m.ScalarQuantizationConfig(
                            type=m.ScalarType.INT8, quantile=QUANTIZATION_QUANTILE, always_ram=True
                        )
                    )
                    if self.scalar_quantization
                    else None
                ),
                on_disk_payload=True,  # payloads (with the kept structures) on disk; indexed fields stay in RAM
                metadata={"model_id": self.model_id},
            )
        for name in KEYWORD_INDEXES:
            self.client.create_payload_index(self.collection, name, m.PayloadSchemaType.KEYWORD, wait=True)
        for name in INTEGER_INDEXES:
            self.client.create_payload_index(self.collection, name, m.PayloadSchemaType.INTEGER, wait=True)

    def upsert(self, points: list[PointIn]) -> None:
        if not points:
            return
        structs = [
            self._m.PointStruct(
                id=point_id_for(p.payload.material_id),
                vector=point_vectors(p, self.sizes),
                payload=p.stored_payload(),
            )
            for p in points
        ]
        self.client.upsert(self.collection, points=structs, wait=True)

    def write_raw(self, points):
        if points:
            structs = [self._m.PointStruct(id=point_id_for(m), vector=v, payload=p) for m, v, p in points]
            self.client.upsert(self.collection, points=structs, wait=True)

    def search(
        self,
        vector: np.ndarray,
        *,
        using: VectorName = "crystal",
        k: int = 10,
        filters: SearchFilters | None = None,
        exact: bool | None = None,
    ) -> list[Hit]:
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        if not self.has_vector(check_using(using)):
            raise StoreError(f"collection {self.collection} keeps no {using} vectors (made before they existed)")
        m = self._m
        flt = build_filter(filters, self._models)
        plan = filtered_plan(
            filters, exact, lambda: self.client.count(self.collection, count_filter=flt, exact=False).count
        )
        if plan.exact:  # an exact scan reads the original vectors, never the int8 copies
            ignore = m.QuantizationSearchParams(ignore=True) if self.scalar_quantization else None
            params = m.SearchParams(exact=True, quantization=ignore)
        else:
            rescore = m.QuantizationSearchParams(rescore=True, oversampling=QUANTIZATION_OVERSAMPLING)
            params = m.SearchParams(
                hnsw_ef=max(plan.hnsw_ef or HNSW_EF, k),
                quantization=rescore if self.scalar_quantization else None,
                acorn=m.AcornSearchParams(enable=True, max_selectivity=ACORN_MAX_SELECTIVITY) if plan.acorn else None,
            )
        result = self.client.query_points(
            self.collection,
            query=check_vector(vector, self.sizes[using]),
            using=using,
            query_filter=flt,
            search_params=params,
            limit=k,
            with_payload=self._metadata_only(),
        )
        return [
            Hit(material_id=p.payload["material_id"], distance=float(p.score), payload=MaterialPayload(**p.payload))
            for p in result.points
        ]

    def _rrf_query(self, vectors, k, depth, filters, options):
        m = self._m
        flt = build_filter(filters, self._models)
        weights = options.weights()
        prefetch = [
            m.Prefetch(query=check_vector(vectors[n], self.sizes[n]), using=n, limit=depth, filter=flt)
            for n in HYBRID_NOTIONS
        ]
        if hasattr(m, "RrfQuery"):  # k and weights (qdrant-client >= 1.16); else the server's default RRF
            fusion = m.RrfQuery(rrf=m.Rrf(k=options.rrf_k, weights=[weights[n] for n in HYBRID_NOTIONS]))
        else:
            fusion = m.FusionQuery(fusion=m.Fusion.RRF)
        result = self.client.query_points(
            self.collection, prefetch=prefetch, query=fusion, query_filter=flt, limit=k, with_payload=False
        )
        return [(p.id, float(p.score)) for p in result.points]

    def _metadata_only(self):
        return self._m.PayloadSelectorExclude(exclude=[*STRUCTURE_FIELDS, *PEAK_FIELDS])

    def _retrieve_points(self, point_ids: list[str], with_payload, with_vectors) -> list:
        if not point_ids:
            return []
        return self.client.retrieve(self.collection, point_ids, with_payload=with_payload, with_vectors=with_vectors)

    def delete(self, material_ids: list[str]) -> int:
        records = self._retrieve(material_ids, False, False)
        if records:
            selector = self._m.PointIdsList(points=[r.id for r in records])
            self.client.delete(self.collection, points_selector=selector, wait=True)
        return len(records)

    def count(self, filters: SearchFilters | None = None) -> int:
        return self.client.count(self.collection, count_filter=build_filter(filters, self._models), exact=True).count

    def _scroll_page(self, offset, limit: int, fields: list[str], using: list[str]):
        return self.client.scroll(
            self.collection, offset=offset, limit=limit, with_payload=fields, with_vectors=using or False
        )

    def optimize(self) -> None:
        """The server builds HNSW in the background on its own; nothing to do."""

    def _http_base(self) -> str:
        return self.url.rstrip("/")

    def _request(self, url: str, data: bytes | None = None, headers: dict | None = None):
        headers = dict(headers or {})
        if self._api_key:
            headers["api-key"] = self._api_key
        return urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers), timeout=600)

    def snapshot(self, path: str | Path) -> Path:
        """Create a server-side collection snapshot and download it to ``path``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        description = self.client.create_snapshot(self.collection, wait=True)
        if description is None:
            raise StoreError(f"the server did not create a snapshot of {self.collection}")
        url = f"{self._http_base()}/collections/{self.collection}/snapshots/{description.name}"
        with self._request(url) as response, path.open("wb") as out:
            while chunk := response.read(1 << 20):
                out.write(chunk)
        return path

    def restore(self, path: str | Path) -> None:
        """Upload a snapshot (from :meth:`snapshot`) and recover the collection from it."""
        path = Path(path)
        boundary = "matconcept-snapshot-boundary"
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="snapshot"; filename="{path.name}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n"
            ).encode()
            + path.read_bytes()
            + f"\r\n--{boundary}--\r\n".encode()
        )
        url = f"{self._http_base()}/collections/{self.collection}/snapshots/upload?priority=snapshot&wait=true"
        with self._request(url, data=body, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}):
            pass

    def close(self) -> None:
        self.client.close()
