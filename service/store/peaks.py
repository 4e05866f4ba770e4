"""A material's peak list and strain-tolerant fingerprint, kept with its point for pattern search.

Phase identification (:mod:`matconcept.service.app.phase_search`) re-ranks candidates by comparing a
measured pattern with each candidate's peaks; reading 64 (d, intensity) pairs from the payload is
what makes that cheap, where simulating every candidate again would not be. Each point carries:

``peaks_d``
    the strongest reflections' d-spacings, Å, decreasing (at most
    :data:`~matconcept.encoders.xrd.peaks.MAX_PEAKS`);
``peaks_i``
    their intensities relative to the strongest (1).

Like the structure fields, they are left out of every search, get and map payload selection
(:data:`PEAK_FIELDS` joins the excluded fields) and read only by
:meth:`~matconcept.service.store.base.VectorStore.get_peaks`. The fingerprint
(:func:`~matconcept.encoders.xrd.fingerprint.peaks_fingerprint`) is a named vector,
:data:`FINGERPRINT`, searched as the physics first stage beside the learned ``xrd`` and ``crystal``.

Points written before peak lists were stored have neither: their peaks are simulated from the stored
structure when a search needs them (:func:`peaks_for`), and they are found by the learned vectors only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from pymatgen.core import Structure

    from matconcept.encoders.xrd.peaks import PeakList
    from matconcept.encoders.xrd.simulate import Reflections

PEAKS_D = "peaks_d"
PEAKS_I = "peaks_i"
PEAK_FIELDS: tuple[str, ...] = (PEAKS_D, PEAKS_I)
"""Payload fields holding a material's peak list; never part of a hit's payload."""

FINGERPRINT = "fingerprint"
"""Name of the strain-tolerant physics vector (cosine-like: unit L2, searched by Euclidean distance)."""
FINGERPRINT_DIM = 608
"""Its size: :data:`matconcept.encoders.xrd.fingerprint.FINGERPRINT_DIM`, repeated here so that reading a
store's layout does not import the simulator (pymatgen); a test checks the two agree."""


def phase_features(structure: Structure | Reflections) -> tuple[PeakList, np.ndarray]:
    """A structure's peak list and fingerprint, as ingest stores them (from the structure, or from its
    reflections as :func:`~matconcept.encoders.xrd.peaks.peak_simulator` gives them).

    Raises:
        ValueError: A species has no X-ray scattering coefficients.
    """
    from matconcept.encoders.xrd.fingerprint import peaks_fingerprint
    from matconcept.encoders.xrd.peaks import peak_list

    peaks = peak_list(structure)
    return peaks, peaks_fingerprint(peaks)


class PhaseFeatures(BaseModel):
    """What a point keeps for pattern search: its peak list (payload) and fingerprint (named vector)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    peaks_d: list[float]
    peaks_i: list[float]
    fingerprint: np.ndarray

    @classmethod
    def of(cls, structure: Structure | Reflections) -> PhaseFeatures | None:
        """A structure's features (or its peak simulator's reflections'), or None when it cannot be
        simulated (no scattering factors)."""
        try:
            peaks, fingerprint = phase_features(structure)
        except ValueError:
            return None
        d, intensity = peaks.to_lists()
        return cls(peaks_d=d, peaks_i=intensity, fingerprint=fingerprint)

    def to_payload(self) -> dict[str, list[float]]:
        return {PEAKS_D: self.peaks_d, PEAKS_I: self.peaks_i}


def peaks_payload(peaks: PeakList) -> dict[str, list[float]]:
    """The payload fields of a peak list (rounded lists)."""
    d, intensity = peaks.to_lists()
    return {PEAKS_D: d, PEAKS_I: intensity}


def peaks_from_payload(payload: Mapping[str, Any]) -> PeakList | None:
    """A stored peak list, or None for a point written before peak lists were stored."""
    from matconcept.encoders.xrd.peaks import PeakList

    d, intensity = payload.get(PEAKS_D), payload.get(PEAKS_I)
    if d is None or intensity is None or len(d) != len(intensity):
        return None
    return PeakList(np.asarray(d, dtype=np.float64), np.asarray(intensity, dtype=np.float64))


def peaks_for(payload: Mapping[str, Any], structure: Structure | None) -> PeakList | None:
    """The stored peak list, else one simulated from the stored structure, else None."""
    stored = peaks_from_payload(payload)
    if stored is not None or structure is None:
        return stored
    try:
        return phase_features(structure)[0]
    except ValueError:
        return None


class PatternMatch(BaseModel):
    """How well a hit's simulated pattern explains a measured query (search-match, after re-ranking).

    The hit's ``distance`` stays the embedding distance of the first stage; this is the second.
    """

    score: float = Field(description="cosine of the query with the hit's pattern at the fitted strain and shift, ≤ 1")
    strain: float = Field(description="fitted isotropic strain ε: query d = stored d × (1 + ε)")
    shift: float = Field(description="fitted 2θ zero shift, degrees (query peak = stored peak + shift)")
