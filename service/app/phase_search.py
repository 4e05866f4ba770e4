"""Phase identification for pattern queries: learned and physics candidates, re-ranked by search-match.

A measured pattern is searched in two stages (``benchmarks/bench_phase_id.py`` measures why):

1. *Candidates*: the union of the nearest stored points of the XRD encoder's vector of the pattern
   among the ``xrd`` and the ``crystal`` vectors, and of its strain-tolerant fingerprint among the
   stored fingerprints (:data:`~matconcept.service.store.peaks.FINGERPRINT`), ``depth`` each, all under
   the query's filters. At 10k stored materials the learned vectors alone miss a few percent of
   held-out structures at depth 200; with the fingerprint the union finds them all.
2. *Re-ranking*: each candidate's stored peak list is scored against the measured pattern
   (:func:`~matconcept.encoders.xrd.match.match_peaks`: background removed, width estimated or given,
   strain and zero shift fitted on a grid, then the best 20's strain, shift, width and a smooth
   background fitted by least squares, which tells isostructural compounds apart by their
   intensities, and the best few's preferred orientation, from their stored structures
   (:func:`~matconcept.encoders.xrd.match.texture_fit`)); hits are ranked by that score and carry
   it with the fitted strain and shift, beside their embedding distance. A mixture is explained greedily
   (:func:`~matconcept.encoders.xrd.match.identify_phases`) into a ``phases`` list.

This module is the physics half, run inside the store deployment (which holds the peak lists);
:class:`~matconcept.service.app.core.ServiceAPI` does the plumbing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from matconcept.service.store.peaks import PatternMatch

if TYPE_CHECKING:
    from matconcept.encoders.xrd.match import PreparedQuery
    from matconcept.encoders.xrd.measured import MeasuredOnGrid
    from matconcept.encoders.xrd.peaks import PeakList
    from matconcept.encoders.xrd.texture import OrientedReflections
    from matconcept.service.store.base import VectorStore
    from matconcept.service.store.records import Hit, SearchFilters
    from matconcept.service.store.structures import StoredStructure

logger = logging.getLogger(__name__)

DEFAULT_DEPTH = 200
"""Candidates taken from each first-stage vector (see the module docstring)."""
MAX_DEPTH = 1000


class PatternSearchOptions(BaseModel):
    """How a pattern query is searched (all optional; the defaults are the measured choice)."""

    model_config = ConfigDict(extra="forbid")

    rerank: bool = Field(default=True, description="two-stage search; false: the embedding alone, as before")
    depth: int = Field(default=DEFAULT_DEPTH, ge=1, le=MAX_DEPTH, description="candidates per first-stage vector")
    wavelength: str | None = Field(
        default=None,
        max_length=40,
        description='Å ("0.7293"), or an anode (Cu, Mo, Co, Cr, Fe, Ag; Ka, Ka1, Ka2); Cu Kα when unset',
    )
    max_strain: float = Field(default=0.03, ge=0, le=0.1, description="isotropic strain fitted, ±")
    max_shift: float = Field(default=0.1, ge=0, le=1.0, description="2θ zero shift fitted, ± degrees")
    fwhm: float | None = Field(default=None, ge=0.03, le=1.5, description="peak width, degrees 2θ; estimated if unset")
    max_phases: int = Field(default=2, ge=1, le=3, description="phases of a mixture reported (1: no mixture search)")

    @field_validator("wavelength", mode="before")
    @classmethod
    def _wavelength(cls, value: Any) -> str | None:
        # A number is as good as its text (the gRPC field is a string); "" means unset.
        if value is None or value == "":
            return None
        return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


class PatternSummary(BaseModel):
    """What the service made of a measured pattern (re-ranked pattern searches)."""

    fwhm: float = Field(description="peak width used, degrees 2θ")
    fwhm_estimated: bool = Field(description="estimated from the pattern (not given)")
    residual: float | None = Field(default=None, description="strongest unexplained peak, relative to the strongest")
    candidates: int = Field(description="candidates re-ranked")


class Phase(BaseModel):
    """One phase of a measured pattern, in the order found (the strongest first)."""

    material_id: str
    score: float = Field(description="match score against what was left to explain when it was found")
    strain: float
    shift: float
    weight: float = Field(description="share of the pattern's diffracted intensity this phase explains")


class PatternRanking(BaseModel):
    """The re-ranked candidates of one pattern query."""

    order: list[str] = Field(description="candidate material ids, best match first")
    matches: dict[str, PatternMatch] = Field(description="per candidate that has a peak list")
    phases: list[Phase] = Field(default_factory=list)
    residual: float | None = Field(default=None, description="strongest unexplained peak, relative to the strongest")
    fwhm: float = Field(description="peak width used, degrees 2θ")
    fwhm_estimated: bool


@dataclass(frozen=True)
class Candidate:
    material_id: str
    peaks: PeakList | None


def prepare(
    two_theta: Sequence[float], intensity: Sequence[float], options: PatternSearchOptions, name: str
) -> PreparedQuery:
    """The measured pattern on the model's grid, background removed and width known.

    Raises:
        StructureInputError: (reason ``bad_pattern``) naming the problem: too few points, NaN, 2θ out
            of range or unsorted, all zeros, an unknown wavelength, no overlap with the model's range.
    """
    return measured_query(two_theta, intensity, options, name)[1]


def measured_query(
    two_theta: Sequence[float], intensity: Sequence[float], options: PatternSearchOptions, name: str
) -> tuple[MeasuredOnGrid, PreparedQuery]:
    """:func:`prepare`, also returning the pattern as resampled (what the XRD encoder reads)."""
    from matconcept.encoders.errors import InputErrorReason, StructureInputError
    from matconcept.encoders.xrd.match import prepare_query
    from matconcept.encoders.xrd.measured import measured_on_grid

    on_grid = measured_on_grid(np.asarray(two_theta), np.asarray(intensity), options.wavelength, name=name)
    try:
        return on_grid, prepare_query(on_grid.pattern, covered=on_grid.covered, config=_config(options))
    except ValueError as exc:  # e.g. nothing left once the background is removed
        raise StructureInputError(InputErrorReason.BAD_PATTERN, name, str(exc)) from exc


def _config(options: PatternSearchOptions):
    from matconcept.encoders.xrd.match import MatchConfig

    return MatchConfig(max_strain=options.max_strain, max_shift=options.max_shift, fwhm=options.fwhm)


StructureReader = Callable[[list[str]], Mapping[str, "StoredStructure | None"]]
"""material ids → their stored structures (:meth:`VectorStore.get_structures`)."""


def _oriented(ids: list[str], structures: StructureReader | None):
    """The texture fit's reflections of candidates (rows of ``ids``), simulated from their stored
    structures when the fit asks (a few per query); None for a row without one."""
    if structures is None:
        return None

    def oriented(rows: Sequence[int]) -> list[OrientedReflections | None]:
        from matconcept.encoders.xrd.peaks import peak_simulator
        from matconcept.encoders.xrd.texture import oriented_reflections

        wanted = [ids[r] for r in rows]
        stored = structures(wanted)
        out: list[OrientedReflections | None] = []
        for material_id in wanted:
            item = stored.get(material_id)
            try:
                out.append(None if item is None else oriented_reflections(item.pymatgen(), peak_simulator()))
            except ValueError:  # no scattering factors for a species: no texture fit for anyone
                out.append(None)
        return out

    return oriented


def rank(
    query: PreparedQuery,
    candidates: Sequence[Candidate],
    options: PatternSearchOptions,
    structures: StructureReader | None = None,
) -> PatternRanking:
    """Score and order ``candidates`` against ``query``; with ``max_phases`` > 1, the mixture's phases.

    Candidates without a peak list keep their first-stage order after the scored ones. With
    ``structures``, the best few are also fitted with a preferred orientation
    (:func:`~matconcept.encoders.xrd.match.texture_fit`, from their stored structures).
    """
    from matconcept.encoders.xrd.match import identify_phases, match_peaks
    from matconcept.encoders.xrd.peaks import PeakTable

    scored = [c for c in candidates if c.peaks is not None and len(c.peaks.d)]
    unscored = [c.material_id for c in candidates if c.peaks is None or not len(c.peaks.d)]
    table = PeakTable.from_lists([c.peaks for c in scored])
    config = _config(options)
    oriented = _oriented([c.material_id for c in scored], structures)
    phases: list[Phase] = []
    residual = None
    if options.max_phases > 1 and scored:
        search = identify_phases(query, table, config, max_phases=options.max_phases, oriented=oriented)
        result = search.first
        residual = round(float(search.residual), 4)
        phases = [
            Phase(
                material_id=scored[p.index].material_id,
                score=round(p.score, 4),
                strain=round(p.strain, 5),
                shift=round(p.shift, 4),
                weight=round(p.weight, 4),
            )
            for p in search.phases
        ]
    else:
        result = match_peaks(query, table, config, oriented)
    matches = {
        c.material_id: PatternMatch(
            score=round(float(result.score[i]), 4),
            strain=round(float(result.strain[i]), 5),
            shift=round(float(result.shift[i]), 4),
        )
        for i, c in enumerate(scored)
    }
    order = [scored[i].material_id for i in result.order()] + unscored
    return PatternRanking(
        order=order,
        matches=matches,
        phases=phases,
        residual=residual,
        fwhm=round(query.fwhm, 4),
        fwhm_estimated=query.fwhm_estimated,
    )


@dataclass
class FirstStage:
    """The candidates of a pattern query, read from the store (see :func:`first_stage`)."""

    hits: dict[str, Hit]
    """material id → its first-stage hit, in the order found."""
    distance: dict[str, float]
    """material id → embedding distance of the query's XRD-encoder vector to its ``using`` vector."""
    peaks: dict[str, PeakList | None]


def first_stage(
    store: VectorStore,
    xrd: Sequence[float],
    fingerprint: Sequence[float] | None,
    options: PatternSearchOptions,
    *,
    filters: SearchFilters | None,
    using: str,
) -> FirstStage:
    """Candidates: the nearest ``options.depth`` points of the XRD-encoder vector among the stored
    ``xrd`` and ``crystal`` vectors and of the fingerprint among the stored fingerprints (where the
    store keeps them), under ``filters``, with their embedding distances and peak lists.

    Every call here reads the store: a caller that serialises store access holds its lock around it.
    """
    from matconcept.service.store.peaks import FINGERPRINT

    vector = np.asarray(xrd, dtype=np.float32)
    lists = [("xrd", vector), ("crystal", vector)]
    if fingerprint is not None and store.has_vector(FINGERPRINT):
        lists.append((FINGERPRINT, np.asarray(fingerprint, dtype=np.float32)))
    found: dict[str, Hit] = {}
    distance: dict[str, float] = {}
    for name, query_vector in lists:
        for hit in store.search(query_vector, using=name, k=options.depth, filters=filters):
            found.setdefault(hit.material_id, hit)
            if name == using:
                distance[hit.material_id] = hit.distance
    missing = [m for m in found if m not in distance]
    for record in store.get(missing, with_vectors=True) if missing else []:
        stored = np.asarray(record.vectors[using], dtype=np.float32)
        distance[record.material_id] = float(np.linalg.norm(stored - vector))
    return FirstStage(found, distance, store.get_peaks(list(found)))


def second_stage(
    query: PreparedQuery,
    first: FirstStage,
    options: PatternSearchOptions,
    top_k: int,
    structures: StructureReader | None = None,
) -> tuple[list[Hit], PatternRanking]:
    """Re-rank the candidates by search-match: (the best ``top_k`` hits, each with its match and
    embedding distance; the ranking with the phases). ``structures`` reads stored structures for the
    texture fit of the best few (none without it)."""
    ranking = rank(query, [Candidate(m, first.peaks.get(m)) for m in first.hits], options, structures)
    hits = []
    for m in ranking.order[:top_k]:
        hit = first.hits[m]
        update = {"distance": first.distance.get(m, hit.distance), "match": ranking.matches.get(m)}
        hits.append(hit.model_copy(update=update))
    return hits, ranking
