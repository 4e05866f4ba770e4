"""Filtered search plan and int8 scalar quantization of the embedded store (cheap: 16-d, 600 points).

The figures behind the plan (recall@50 of filtered HNSW at 100k, with and without quantization)
are benchmarks/bench_search.py's; here the rule itself and the quantized store's behaviour.
"""

from __future__ import annotations

import numpy as np
import pytest

from matconcept.service.store import PointIn, SearchFilters
from matconcept.service.store.base import EXACT_FILTER_MAX, FILTERED_HNSW_EF, SearchPlan, filtered_plan
from matconcept.service.store.edge import EdgeStore
from matconcept.service.store.records import MaterialPayload

DIM = 16
N = 600


def _points(rng: np.random.Generator) -> list[PointIn]:
    out = []
    for i in range(N):
        elements = ["O", "Si"] if i % 3 == 0 else ["Fe"]
        payload = MaterialPayload(
            material_id=f"t:{i}",
            source="t",
            source_id=str(i),
            formula="x",
            elements=elements,
            n_elements=len(elements),
            n_sites=1 + i % 7,
            density=0.0,
            volume=0.0,
            content_hash=str(i),
            ingested_at="-",
        )
        v = rng.normal(size=(2, DIM)).astype(np.float32)
        out.append(PointIn(payload=payload, crystal=v[0], xrd=v[1]))
    return out


def test_filtered_plan_is_exact_for_few_matches_and_wide_beam_for_many():
    calls = []

    def matches(n: int):
        return lambda: calls.append(n) or n

    broad = SearchFilters(elements_all=["O"])
    assert filtered_plan(None, None, matches(10**6)) == SearchPlan(False)  # unfiltered: the default beam
    assert filtered_plan(SearchFilters(), None, matches(10**6)) == SearchPlan(False)
    assert filtered_plan(broad, True, matches(1)) == SearchPlan(True)  # asked for wins
    assert filtered_plan(broad, False, matches(1)) == SearchPlan(False)
    assert calls == []  # the count is only asked for a filtered query with no choice made
    assert filtered_plan(broad, None, matches(EXACT_FILTER_MAX)) == SearchPlan(True)
    wide = filtered_plan(broad, None, matches(EXACT_FILTER_MAX + 1))
    assert wide == SearchPlan(False, FILTERED_HNSW_EF, acorn=True)


@pytest.mark.parametrize("quantized", [False, True])
def test_quantized_and_plain_stores_answer_filtered_queries_exactly(tmp_path, quantized):
    rng = np.random.default_rng(0)
    points = _points(rng)
    with EdgeStore(tmp_path / "c", "m", DIM, scalar_quantization=quantized) as store:
        store.upsert(points)
        store.optimize()
        flt = SearchFilters(elements_all=["O"])
        for v in rng.normal(size=(5, DIM)).astype(np.float32):
            want = [h.material_id for h in store.search(v, k=20, filters=flt, exact=True)]
            assert [h.material_id for h in store.search(v, k=20, filters=flt)] == want
            hits = store.search(v, k=20)
            assert [h.material_id for h in hits] == [h.material_id for h in store.search(v, k=20, exact=True)]
    with EdgeStore(tmp_path / "c", "m", DIM) as again:  # the choice is the collection's, kept on reopen
        assert again.scalar_quantization is quantized
