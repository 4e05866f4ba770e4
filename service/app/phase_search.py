"""Phase identification for pattern queries: learned and physics candidates, re-ranked by search-match.

A measured pattern is searched in two stages (``benchmarks/bench_phase_id.py`` measures why):

1. *Candidates*: the union of the nearest stored points of the XRD encoder's vector of the pattern
   among the ``xrd`` and the ``crystal`` vectors, and of its strain-tolerant fingerprint among the
   stored fingerprints (:data:`~matconcept.service.store.peaks.FINGERPRINT`), ``depth`` each, all under
   the query's filters. At 10k stored materials the learned vectors alone miss a few percent of
   held-out structures at depth 200; with the fingerprint the union finds them all.
2. *Re-ranking*: each candidate's stored peak list is scored against the measured pattern
   (:func:`~matconcept.encoders.xrd.match.match_peaks`: background removed, width estimated or given,
   strain and zero shift fitted); hits are ranked by that score and carry it with the fitted strain
   and shift, beside their embedding distance. A mixture is explained greedily
   (:func:`~matconcept.encoders.xrd.match.identify_phases`) into a ``phases`` list.

This module is the physics half, run inside the store deployment (which holds the peak lists);
:class:`~matconcept.service.app.core.ServiceAPI` does the plumbing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from matconcept.service.store.peaks import PatternMatch

if TYPE_CHECKING:
    from matconcept.encoders.xrd.match import PreparedQuery
    from matconcept.encoders.xrd.peaks import PeakList

logger = logging.getLogger(__name__)

DEFAULT_DEPTH = 200
"""Candidates taken from each first-stage vector (see the module docstring)."""
MAX_DEPTH = 1000


class PatternSearchOptions(BaseModel):
    """How a pattern query is searched (all optional; the defaults are the measured choice)."""

    model_config = ConfigDict(extra="forbid")

    rerank: bool = Field(default=True, description="two-stage search; false: the embedding alone, as before")
    depth: int = Field(default=DEFAULT_DEPTH, ge=1, le=MAX_DEPTH, description="candidates per first-stage vector")
    wavelength: str | float | None = Field(
        default=None, description="Å, or an anode (Cu, Mo, Co, Cr, Fe, Ag; Ka, Ka1, Ka2); Cu Kα when unset"
    )
    max_strain: float = Field(default=0.03, ge=0, le=0.1, description="isotropic strain fitted, ±")
    max_shift: float = Field(default=0.1, ge=0, le=1.0, description="2θ zero shift fitted, ± degrees")
    fwhm: float | None = Field(default=None, ge=0.03, le=1.5, description="peak width, degrees 2θ; estimated if unset")
    max_phases: int = Field(default=2, ge=1, le=3, description="phases of a mixture reported (1: no mixture search)")


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
    from matconcept.encoders.errors import InputErrorReason, StructureInputError
    from matconcept.encoders.xrd.match import prepare_query
    from matconcept.encoders.xrd.measured import measured_on_grid

    on_grid = measured_on_grid(np.asarray(two_theta), np.asarray(intensity), options.wavelength, name=name)
    try:
        return prepare_query(on_grid.pattern, covered=on_grid.covered, config=_config(options))
    except ValueError as exc:  # e.g. nothing left once the background is removed
        raise StructureInputError(InputErrorReason.BAD_PATTERN, name, str(exc)) from exc


def _config(options: PatternSearchOptions):
    from matconcept.encoders.xrd.match import MatchConfig

    return MatchConfig(max_strain=options.max_strain, max_shift=options.max_shift, fwhm=options.fwhm)


def rank(query: PreparedQuery, candidates: Sequence[Candidate], options: PatternSearchOptions) -> PatternRanking:
    """Score and order ``candidates`` against ``query``; with ``max_phases`` > 1, the mixture's phases.

    Candidates without a peak list keep their first-stage order after the scored ones.
    """
    from matconcept.encoders.xrd.match import identify_phases, match_peaks
    from matconcept.encoders.xrd.peaks import PeakTable

    scored = [c for c in candidates if c.peaks is not None and len(c.peaks.d)]
    unscored = [c.material_id for c in candidates if c.peaks is None or not len(c.peaks.d)]
    table = PeakTable.from_lists([c.peaks for c in scored])
    config = _config(options)
    phases: list[Phase] = []
    residual = None
    if options.max_phases > 1 and scored:
        search = identify_phases(query, table, config, max_phases=options.max_phases)
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
        result = match_peaks(query, table, config)
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
