"""The structure-type encoder's input: a crystal's role graph, as numpy arrays (no torch).

Every site is alike except for its *role* (the share of the cell its species occupies and where the
species ranks by electronegativity among the material's species); each edge carries its length in
units of the cell's (V/N)^(1/3) and whether its two ends hold the same species. See
:mod:`matconcept.encoders.structure_type` for the encoder that reads it. Kept apart from the encoder
so that the processes that only featurize (ingest's pool workers) never import torch.

Shapes:
    ``type_x`` (|V|, ROLE_FEATURES) float32, ``type_edge_index`` (2, |E|) int64 as (neighbour j,
    centre i), ``type_edge_dist`` (|E|,) float32 in units of (V/N)^(1/3), ``type_edge_same`` (|E|,) 0/1.
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from pymatgen.core import Element, Structure

from matconcept.encoders.graph import neighbor_list

ROLE_FEATURES = 4
"""Per-site role: species share of the sites, electronegativity rank in [0, 1], 1/(species count), 1."""


class StructureTypeSettings(BaseModel):
    """Graph settings of the structure-type encoder (in units of (V/N)^(1/3), the mean site spacing)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cutoff: float = Field(default=1.8, gt=0, description="neighbour cutoff, in units of (V/N)^(1/3)")
    max_neighbors: int = Field(default=64, gt=0, description="safety cap on neighbours per site")


def _majority_symbol(site) -> str:
    """The element a site mostly holds (mixed sites and sites of one species at partial occupancy too)."""
    species, _ = max(site.species.items(), key=lambda kv: (kv[1], str(kv[0])))
    return species.symbol


def _electronegativity(symbol: str) -> float:
    x = Element(symbol).X
    return float(x) if x is not None and math.isfinite(x) else 0.0


def site_roles(structure: Structure) -> tuple[np.ndarray, np.ndarray]:
    """(role features (n, ROLE_FEATURES) float32, species index per site (n,) int64).

    The role says what part a site's species plays, not which element it is: its share of the sites,
    and its rank by electronegativity (ties by atomic number) among the material's species.
    """
    symbols = [_majority_symbol(site) for site in structure]
    species = sorted(set(symbols), key=lambda s: (_electronegativity(s), Element(s).Z))
    index = {s: i for i, s in enumerate(species)}
    codes = np.array([index[s] for s in symbols], dtype=np.int64)
    n, k = len(symbols), len(species)
    share = np.bincount(codes, minlength=k)[codes] / n
    rank = codes / (k - 1) if k > 1 else np.zeros(n)
    roles = np.stack([share, rank, np.full(n, 1.0 / k), np.ones(n)], axis=1).astype(np.float32)
    return roles, codes


def role_graph_arrays(structure: Structure, settings: StructureTypeSettings | None = None) -> dict[str, np.ndarray]:
    """The ``type_*`` attributes of one structure as numpy arrays (the featurizer adds them to its graph)."""
    settings = settings or StructureTypeSettings()
    n = len(structure)
    scale = (structure.volume / n) ** (1.0 / 3.0)
    roles, codes = site_roles(structure)
    centre, neighbour, dist = neighbor_list(structure, settings.cutoff * scale)
    dist = dist / scale
    order = np.lexsort((np.round(dist, 5), centre))
    centre, neighbour, dist = centre[order], neighbour[order], dist[order]
    if len(centre):
        first = np.searchsorted(centre, centre, side="left")
        keep = (np.arange(len(centre)) - first) < settings.max_neighbors
        centre, neighbour, dist = centre[keep], neighbour[keep], dist[keep]
    return {
        "type_x": roles,
        "type_edge_index": np.stack([neighbour, centre]).astype(np.int64),
        "type_edge_dist": dist.astype(np.float32),
        "type_edge_same": (codes[neighbour] == codes[centre]).astype(np.float32),
    }
