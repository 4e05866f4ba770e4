"""The least-squares polish of search-match (matconcept.encoders.xrd.match.polish_fit).

What it is for: isostructural compounds whose cells differ by less than the fitted strain range
(YbO and UO, 1.2 % apart) score within a grid step of each other on the strain grid; fitting strain,
zero shift, peak width and a smooth background continuously lets their relative intensities decide.
Queries are measured-looking patterns from the library's own generator, as in test_phase_match.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from matconcept.encoders.xrd import resample_pattern
from matconcept.encoders.xrd.match import MatchConfig, match_peaks, polish_fit, prepare_query
from matconcept.encoders.xrd.peaks import PeakTable, peak_list
from matconcept.encoders.xrd.synthetic import MeasuredConditions, random_conditions, simulate_measured


def rock_salt(a: float, cation: str, anion: str) -> Structure:
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(a), [cation, anion], [[0, 0, 0], [0.5, 0.5, 0.5]])


def query_of(structure: Structure, conditions: MeasuredConditions, seed: int):
    return prepare_query(resample_pattern(*simulate_measured(structure, conditions, rng=seed)))


def test_polish_recovers_strain_shift_and_width(nacl):
    conditions = MeasuredConditions(strain=0.0123, zero_shift=0.047, fwhm=0.17, noise=0.01, background=0.05)
    query = query_of(nacl, conditions, seed=1)
    table = PeakTable.from_lists([peak_list(nacl)])
    fit = polish_fit(query, table, np.array([0.011]), np.array([0.0]))  # a grid step or so off
    assert fit.strain[0] == pytest.approx(0.0123, abs=2e-4)
    assert fit.shift[0] == pytest.approx(0.047, abs=0.01)
    assert fit.fwhm[0] == pytest.approx(0.17, abs=0.02)
    assert fit.score[0] > 0.97
    grid = match_peaks(query, table, MatchConfig(polish=0))
    polished = match_peaks(query, table)
    assert polished.polished[0] and not grid.polished[0]
    assert polished.score[0] >= grid.score[0]


@pytest.mark.parametrize(
    ("right", "wrong"),
    [
        (rock_salt(4.86, "Yb", "O"), rock_salt(4.92, "U", "O")),
        (rock_salt(4.177, "Ni", "O"), rock_salt(4.26, "Co", "O")),
    ],
    ids=["YbO-UO", "NiO-CoO"],
)
def test_isostructural_compounds_within_the_strain_range_are_told_apart(right, wrong):
    """Random powders (±2 % strain, 0.05-0.3° FWHM, shift, noise, background): the cells are closer
    than the strain range, so only relative intensities (the cations' scattering) separate them.
    The strain grid alone gets about 60 % of these right."""
    table = PeakTable.from_lists([peak_list(right), peak_list(wrong)])
    wins = 0
    for seed in range(10):
        conditions = random_conditions(np.random.default_rng(seed), texture=(1.0, 1.0))
        wins += int(match_peaks(query_of(right, conditions, seed), table).order()[0] == 0)
    assert wins >= 9


def test_polished_candidates_come_first(nacl, batio3):
    query = query_of(nacl, MeasuredConditions(strain=0.01, fwhm=0.1, noise=0.02), seed=2)
    table = PeakTable.from_lists([peak_list(s) for s in (batio3, nacl, rock_salt(5.4, "Na", "F"))])
    result = match_peaks(query, table, MatchConfig(polish=2, polish_margin=1.0))
    assert result.polished.sum() == 2
    assert result.polished[result.order()[:2]].all()
    assert result.order()[0] == 1
    # By default only candidates within reach of the best grid score are fitted.
    tight = match_peaks(query, table, MatchConfig(polish=3, polish_margin=0.0))
    assert tight.polished.tolist() == [False, True, False]


def test_smooth_background_left_over_does_not_count(nacl):
    """A broad hump left under the peaks (what SNIP leaves of a steep background) neither lowers
    the right candidate's polished score much nor moves its fitted strain."""
    from dataclasses import replace

    query = query_of(nacl, MeasuredConditions(strain=0.005, fwhm=0.12, noise=0.01, background=0.05), seed=3)
    centres = query.settings.bin_centres()
    assert query.covered[0] < 15.0 and query.covered[1] > 105.0
    hump = 0.08 * np.exp(-0.5 * ((centres - 30.0) / 6.0) ** 2)
    humped = replace(query, signal=query.signal + hump)
    table = PeakTable.from_lists([peak_list(nacl)])
    clean = polish_fit(query, table, np.array([0.005]), np.array([0.0]))
    fit = polish_fit(humped, table, np.array([0.005]), np.array([0.0]))
    bare = polish_fit(humped, table, np.array([0.005]), np.array([0.0]), MatchConfig(polish_background=0))
    assert fit.score[0] == pytest.approx(clean.score[0], abs=0.002)
    assert bare.score[0] < fit.score[0] - 0.05  # without the background term the hump is misfit
    assert fit.strain[0] == pytest.approx(0.005, abs=3e-4)


def test_a_short_scan_is_polished_without_a_background(nacl):
    """A scan of a few degrees cannot tell a smooth background from peaks: the polish fits none."""
    two_theta, counts = simulate_measured(nacl, MeasuredConditions(fwhm=0.1, noise=0.01, background=0.05), rng=4)
    keep = (two_theta > 25.0) & (two_theta < 34.0)
    query = prepare_query(resample_pattern(two_theta[keep], counts[keep]))
    result = match_peaks(query, PeakTable.from_lists([peak_list(nacl), peak_list(rock_salt(5.4, "Na", "F"))]))
    assert result.polished[0] and np.isfinite(result.score).all()
    assert result.order()[0] == 0 and result.score[0] > 0.9
