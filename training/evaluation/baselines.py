"""Hand-crafted structure descriptors the embedding is compared against.

The paper compares its neighbour lists with two Coulomb-matrix variants of Faber et al. (Int. J.
Quantum Chem. 115, 1094 (2015)), the Ewald sum matrix and the sine Coulomb matrix; the Materials
Project's "similar structures" use the CrystalNN site-statistics fingerprint. Each descriptor turns
a structure into one fixed-length vector compared by Euclidean distance, as their authors do.

Where the code comes from:

* sine Coulomb matrix: matminer's ``SineCoulombMatrix`` builds the matrix; we take its eigenvalue
  spectrum ourselves (matminer's ``flatten=True`` leaves ``np.linalg.eig`` output unsorted, so its
  vector depends on the site order).
* Ewald sum matrix: matminer has none, so it is pymatgen's ``EwaldSummation`` with the nuclear
  charges Z as point charges (real + reciprocal + self terms) plus the neutralising-background term
  Faber et al. include, spread over site pairs; then its eigenvalue spectrum.
* CrystalNN fingerprint: matminer's ``SiteStatsFingerprint`` over ``CrystalNNFingerprint`` "ops",
  with the settings the Materials Project documents (``distance_cutoffs=None, x_diff_weight=0``,
  statistics mean, std_dev, minimum, maximum: docs.materialsproject.org, "Structure similarity").

Spectra of cells with different site counts are zero-padded to the largest cell in the set, sorted
by decreasing absolute value (Faber et al.'s convention), so two cells compare eigenvalue by eigenvalue.
"""

from __future__ import annotations

import contextlib
import logging
import math
import multiprocessing as mp
import os
import sys
import warnings
from collections.abc import Sequence
from typing import Protocol

import numpy as np
from pymatgen.core import Structure
from tqdm import tqdm

logger = logging.getLogger(__name__)


PARALLEL_MIN = 64
"""Fewest structures worth a process pool (each spawned worker spends seconds importing matminer)."""
POOL_CHUNKSIZE = 8


class Descriptor(Protocol):
    """A structure descriptor: a name and a batch featurizer returning (n, d) float64."""

    name: str

    def featurize(self, structures: Sequence[Structure]) -> np.ndarray: ...


def _pad_spectra(spectra: list[np.ndarray]) -> np.ndarray:
    width = max((len(s) for s in spectra), default=0)
    out = np.zeros((len(spectra), width))
    for i, s in enumerate(spectra):
        out[i, : len(s)] = s
    return out


def spectrum(matrix: np.ndarray) -> np.ndarray:
    """Eigenvalues of a symmetric matrix sorted by decreasing absolute value (a permutation invariant)."""
    sym = 0.5 * (matrix + matrix.T)
    values = np.linalg.eigvalsh(sym)
    return values[np.argsort(-np.abs(values), kind="stable")]


class SineCoulombSpectrum:
    """Eigenvalue spectrum of the sine Coulomb matrix (Faber et al. 2015), via matminer.

    M_ii = 0.5 Z_i^2.4; M_ij = Z_i Z_j / |B · Σ_k e_k sin²(π (B⁻¹ (r_i − r_j))_k)| with B the lattice:
    a periodic, Coulomb-like interaction. Units: e²/Å (atomic charges, Å distances).
    """

    name = "sine_coulomb"

    def __init__(self) -> None:
        from matminer.featurizers.structure import SineCoulombMatrix

        self._matrix = SineCoulombMatrix(diag_elems=True, flatten=False)

    def one(self, structure: Structure) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PendingDeprecationWarning)  # matminer uses np.matrix
            return spectrum(np.asarray(self._matrix.featurize(structure)[0], dtype=np.float64))

    def featurize(self, structures: Sequence[Structure]) -> np.ndarray:
        return _pad_spectra(_map(self.one, structures, self.name, fallback=lambda s: np.zeros(len(s))))


class EwaldSpectrum:
    """Eigenvalue spectrum of the Ewald sum matrix (Faber et al. 2015), via pymatgen's Ewald summation.

    M_ij is the Ewald interaction energy (eV) of point charges Z_i and Z_j at sites i and j in the
    periodic crystal, including the neutralising background −(π / 2Vη) Z_i Z_j (V the cell volume,
    η pymatgen's Ewald splitting parameter), so Σ_ij M_ij is the Ewald energy of the cell.
    """

    name = "ewald"

    ACCURACY = 6.0
    """Ewald accuracy factor (pymatgen's ``acc_factor``, ~decimal places); 6 keeps large cells fast."""

    def one(self, structure: Structure) -> np.ndarray:
        from pymatgen.analysis.ewald import EwaldSummation

        charged = structure.copy()
        z = np.array([site.specie.Z for site in structure], dtype=np.float64)
        charged.add_oxidation_state_by_site(z.tolist())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pymatgen warns that the cell is not charge balanced
            ewald = EwaldSummation(charged, acc_factor=self.ACCURACY)
            matrix = ewald.total_energy_matrix
        background = -EwaldSummation.CONV_FACT * math.pi / (2 * structure.volume * ewald.eta) * np.outer(z, z)
        return spectrum(matrix + background)

    def featurize(self, structures: Sequence[Structure]) -> np.ndarray:
        return _pad_spectra(_map(self.one, structures, self.name, fallback=lambda s: np.zeros(len(s))))


class CrystalNNFingerprint:
    """The Materials Project's structure fingerprint (Zimmermann & Jain), via matminer.

    Each site gets CrystalNN coordination-number weights and local order parameters (61 values:
    tetrahedral, octahedral, …); the structure vector is their mean, standard deviation, minimum and
    maximum over sites (244 values, dimensionless).
    """

    name = "crystalnn"

    def __init__(self, workers: int | None = None) -> None:
        from matminer.featurizers.site import CrystalNNFingerprint as SiteFingerprint
        from matminer.featurizers.structure import SiteStatsFingerprint

        site = SiteFingerprint.from_preset("ops", distance_cutoffs=None, x_diff_weight=0)
        self._ssf = SiteStatsFingerprint(site, stats=("mean", "std_dev", "minimum", "maximum"))
        self.width = len(self._ssf.feature_labels())
        self.workers = workers or os.cpu_count() or 1

    def one(self, structure: Structure) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # CrystalNN warns about missing oxidation states and radii
            return np.nan_to_num(np.asarray(self._ssf.featurize(structure), dtype=np.float64))

    def featurize(self, structures: Sequence[Structure]) -> np.ndarray:
        rows = _map(self.one, structures, self.name, lambda s: np.zeros(self.width), workers=self.workers)
        return np.stack(rows) if rows else np.zeros((0, self.width))


def _safe(fn, structure: Structure) -> tuple[np.ndarray | None, str]:
    try:
        return fn(structure), ""
    except Exception as exc:  # third-party featurizers raise anything (ValueError, KeyError, RuntimeError)
        return None, f"{type(exc).__name__}: {exc}"


def _safe_call(args: tuple) -> tuple[np.ndarray | None, str]:
    return _safe(*args)


def _map(fn, structures: Sequence[Structure], name: str, fallback, workers: int = 1) -> list[np.ndarray]:
    """``fn`` over structures with a progress bar; a failure is logged and gives ``fallback(structure)``.

    A descriptor that cannot handle one odd structure must not stop an evaluation of thousands; the
    failures are few and counted in the log. With ``workers > 1`` and enough structures to pay for
    starting processes (:data:`PARALLEL_MIN`), the work is spread over a spawn pool.
    """
    bar = tqdm(total=len(structures), desc=name, unit="structure", disable=None, leave=False)
    if workers > 1 and len(structures) >= PARALLEL_MIN:
        with mp.get_context("spawn").Pool(workers) as pool:
            results = []
            for res in pool.imap(_safe_call, [(fn, s) for s in structures], chunksize=POOL_CHUNKSIZE):
                results.append(res)
                bar.update()
    else:
        results = []
        for s in structures:
            results.append(_safe(fn, s))
            bar.update()
    bar.close()
    out, failed = [], 0
    for s, (vec, error) in zip(structures, results, strict=True):
        if vec is None:
            failed += 1
            logger.warning("%s failed on %s: %s", name, s.composition.reduced_formula, error)
            vec = fallback(s)
        out.append(vec)
    if failed:
        logger.warning("%s: %d of %d structures failed and were given a zero vector", name, failed, len(structures))
    return out


class CHGNetFeatures:
    """CHGNet's crystal features (Deng et al. 2023): the pooled 64-d representation of a pretrained
    universal potential, trained on Materials Project relaxations. Opt-in (``pip install chgnet``:
    its wheel ships the weights, so it runs offline); a learned baseline beside the hand-crafted ones.
    """

    name = "chgnet"
    batch_size = 32

    def __init__(self) -> None:
        try:
            from chgnet.model import CHGNet
        except ImportError as exc:
            raise ValueError("baseline 'chgnet' needs the chgnet package: pip install chgnet") from exc
        # CHGNet announces itself on stdout even with verbose=False; stdout carries `evaluate --json`'s report
        with contextlib.redirect_stdout(sys.stderr):
            self._model = CHGNet.load(verbose=False)
        self.width = int(self._model.mlp_out_fea) if hasattr(self._model, "mlp_out_fea") else 64

    def featurize(self, structures: Sequence[Structure]) -> np.ndarray:
        rows: list[np.ndarray] = []
        for start in range(0, len(structures), self.batch_size):
            chunk = list(structures[start : start + self.batch_size])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out = self._model.predict_structure(chunk, return_crystal_feas=True, batch_size=len(chunk))
            out = out if isinstance(out, list) else [out]
            rows += [np.asarray(o["crystal_fea"], dtype=np.float64) for o in out]
        return np.stack(rows) if rows else np.zeros((0, self.width))


BASELINES: dict[str, type] = {
    SineCoulombSpectrum.name: SineCoulombSpectrum,
    EwaldSpectrum.name: EwaldSpectrum,
    CrystalNNFingerprint.name: CrystalNNFingerprint,
    CHGNetFeatures.name: CHGNetFeatures,
}
DEFAULT_BASELINES: tuple[str, ...] = (SineCoulombSpectrum.name, EwaldSpectrum.name, CrystalNNFingerprint.name)
"""The hand-crafted descriptors ``evaluate`` compares against unless told otherwise (CHGNet needs an optional
package)."""


def make_baselines(names: Sequence[str] | None = None, workers: int | None = None) -> list[Descriptor]:
    """Instances of the named baselines (all by default); ``workers`` processes for the slow CrystalNN one."""
    names = list(DEFAULT_BASELINES) if names is None else list(names)
    unknown = [n for n in names if n not in BASELINES]
    if unknown:
        raise ValueError(f"unknown baseline(s) {unknown}; choose from {sorted(BASELINES)}")
    return [BASELINES[n](workers) if n == CrystalNNFingerprint.name else BASELINES[n]() for n in names]
