"""The readers under mutation: a bad file ends in a named input error, never another exception, and quickly.

Real inputs — COD CIFs shipped with ``crystals`` and ``ase``, rock salt as POSCAR and pymatgen JSON,
simulated measured patterns as two-column text, CSV and ``.xrdml`` — are mutated by Hypothesis:
truncation, byte flips, inserted bytes, numbers replaced by huge, tiny, non-finite or malformed ones,
lines deleted, swapped or repeated hundreds of times, pieces of another file spliced in. Each mutant
goes through the reader the service uses:

* structures: :func:`matconcept.encoders.structure_io.read_structure` → a ``ParsedStructure`` or a
  :class:`~matconcept.encoders.errors.StructureInputError`;
* patterns: :func:`matconcept.encoders.xrd.read_pattern` and then the query path
  :func:`~matconcept.encoders.xrd.measured_on_grid` → a pattern on the model's grid, or a
  ``StructureInputError`` (reason ``bad_pattern`` / ``unreadable``).

Anything else (``IndexError``, ``ZeroDivisionError``, a numpy warning turned error, a hang) fails the
test. Each input must finish within :data:`TIME_BOUND_S` (an interval timer interrupts a hang at
:data:`HANG_S`). Hypothesis runs derandomized (a fixed seed per test), without its example database,
and the number of cases tried and their outcomes are written to ``tests/artifacts/fuzz_readers.json``
(``MATCONCEPT_TEST_ARTIFACTS`` overrides the folder) and printed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from matconcept.encoders.errors import StructureInputError

TIME_BOUND_S = 10.0
"""Longest any one input may take (a COD CIF parses in ~0.1-0.5 s on a loaded 2-core machine)."""
HANG_S = 30.0
"""An input still running after this is interrupted (so a hang fails the test instead of stalling CI)."""
STRUCTURE_EXAMPLES = 800
PATTERN_EXAMPLES = 1500
XRDML_EXAMPLES = 500
NUMBERS = (
    b"1e309",
    b"-1e309",
    b"nan",
    b"NaN",
    b"inf",
    b"-inf",
    b"9" * 400,
    b"1e-400",
    b"0",
    b"-0",
    b"0.0",
    b"1e30",
    b"-1e30",
    b"18446744073709551617",
    b"0x1F",
    b"1.2.3",
    b"?",
    b".",
    b"1(2)",
    b"",
)
"""What a number in the file is replaced by: overflow, underflow, non-finite, malformed, CIF's ? and ."""
NUMBER = re.compile(rb"[-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?")
FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
OUTCOMES: dict[str, Counter] = {"structure": Counter(), "pattern": Counter(), "xrdml": Counter()}
SLOWEST: dict[str, float] = dict.fromkeys(OUTCOMES, 0.0)


@pytest.fixture(scope="module", autouse=True)
def report():
    """Write and print the cases tried and their outcomes once the module is done."""
    yield
    folder = Path(os.environ.get("MATCONCEPT_TEST_ARTIFACTS") or Path(__file__).parent / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    summary = {
        kind: {"cases": sum(c.values()), "outcomes": dict(sorted(c.items())), "slowest_s": round(SLOWEST[kind], 3)}
        for kind, c in OUTCOMES.items()
    }
    (folder / "fuzz_readers.json").write_text(json.dumps(summary, indent=2))
    print("\nreader fuzzing:", json.dumps(summary))


@contextlib.contextmanager
def hang_guard():
    """Interrupt the input after HANG_S (SIGALRM: the main thread, where pytest runs the test)."""

    def _interrupt(signum, frame):
        raise TimeoutError(f"input still running after {HANG_S} s")

    previous = signal.signal(signal.SIGALRM, _interrupt)
    signal.setitimer(signal.ITIMER_REAL, HANG_S)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _lines(data: bytearray) -> list[bytes]:
    return bytes(data).split(b"\n")


@st.composite
def mutants(draw, seeds: tuple[tuple[str, bytes], ...]) -> tuple[str, bytes]:
    """(name, bytes): one seed file with 1-4 mutations applied in turn."""
    name, seed = draw(st.sampled_from(seeds))
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(("truncate", "flip", "insert", "number", "delete", "swap", "repeat", "splice")))
        position = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "truncate":
            data = data[:position]
        elif op == "flip" and data:
            data[position] ^= draw(st.integers(1, 255))
        elif op == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=32))
        elif op == "number":
            found = list(NUMBER.finditer(bytes(data)))
            if found:
                match = found[draw(st.integers(0, len(found) - 1))]
                data[match.start() : match.end()] = draw(st.sampled_from(NUMBERS))
        elif op in ("delete", "swap", "repeat"):
            lines = _lines(data)
            i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
            if op == "delete":
                del lines[i]
            elif op == "swap":
                lines[i], lines[j] = lines[j], lines[i]
            else:
                lines[i:i] = [lines[i]] * draw(st.sampled_from((2, 10, 500)))
            data = bytearray(b"\n".join(lines))
        elif op == "splice":
            other = draw(st.sampled_from(seeds))[1]
            start = draw(st.integers(0, max(len(other) - 1, 0)))
            data[position:position] = other[start : start + draw(st.integers(1, 400))]
    return name, bytes(data)


def _run(kind: str, read) -> None:
    """Call ``read``: success or a StructureInputError, within the time bound; record the outcome."""
    start = time.perf_counter()
    try:
        with hang_guard(), np.errstate(all="ignore"):
            read()
        outcome = "ok"
    except StructureInputError as exc:
        outcome = str(exc.reason)
    except Exception:
        OUTCOMES[kind]["unexpected"] += 1
        raise
    elapsed = time.perf_counter() - start
    OUTCOMES[kind][outcome] += 1
    SLOWEST[kind] = max(SLOWEST[kind], elapsed)
    assert elapsed < TIME_BOUND_S, f"{kind} input took {elapsed:.1f} s ({outcome})"


# -- structures -------------------------------------------------------------------------------------
def _structure_seeds() -> tuple[tuple[str, bytes], ...]:
    from pymatgen.core import Lattice, Structure
    from pymatgen.io.vasp import Poscar

    from matconcept.encoders.builtin import ase_cifs, crystals_cifs

    cifs = (
        sorted(crystals_cifs(), key=lambda p: p.stat().st_size)[:4]
        + sorted(ase_cifs(), key=lambda p: p.stat().st_size)[:2]
    )
    nacl = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    return (
        *((p.name, p.read_bytes()) for p in cifs),
        ("POSCAR", Poscar(nacl).get_str().encode()),
        ("NaCl.json", json.dumps(nacl.as_dict()).encode()),
    )


STRUCTURE_SEEDS = _structure_seeds()


def test_seeds_are_read():
    """The unmutated seeds are good input (so the mutants start from real files)."""
    from matconcept.encoders.structure_io import read_structure

    for name, seed in STRUCTURE_SEEDS:
        assert read_structure(seed, name=name).structure.num_sites > 0


@settings(FUZZ, max_examples=STRUCTURE_EXAMPLES)
@given(mutant=mutants(STRUCTURE_SEEDS))
def test_mutated_structures_end_in_an_input_error_or_a_structure(mutant):
    from matconcept.encoders.structure_io import read_structure

    name, data = mutant
    _run("structure", lambda: read_structure(data, name=name))


# -- patterns ---------------------------------------------------------------------------------------
def _patterns() -> list[tuple[np.ndarray, np.ndarray]]:
    from pymatgen.core import Lattice, Structure

    from matconcept.encoders.structure_io import read_structure
    from matconcept.encoders.xrd.synthetic import MeasuredConditions, simulate_measured
    from tests.data import cod_cif

    nacl = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    batio3 = read_structure(cod_cif("BaTiO3_cubic")).structure
    conditions = MeasuredConditions(strain=0.004, zero_shift=0.02, fwhm=0.12, noise=0.02, background=0.05)
    out = []
    for i, phases in enumerate((nacl, batio3, [nacl, batio3])):
        two_theta, counts = simulate_measured(phases, conditions, rng=i)
        step = 5  # 1000 points: a real scan's size, and cheap to mutate
        out.append((two_theta[::step], counts[::step]))
    return out


def _pattern_seeds() -> tuple[tuple[str, bytes], ...]:
    seeds = []
    for k, (two_theta, counts) in enumerate(_patterns()):
        rows = [f"{t:.4f} {c:.1f}" for t, c in zip(two_theta, counts, strict=True)]
        if k == 0:
            seeds.append(("scan.xy", "\n".join(rows).encode()))
        elif k == 1:
            seeds.append(("scan.csv", ("# 2theta,counts\n" + "\n".join(r.replace(" ", ",") for r in rows)).encode()))
        else:
            esd = (f"{r} {np.sqrt(max(float(r.split()[1]), 1)):.2f}" for r in rows)
            seeds.append(("scan.xye", "\n".join(esd).encode()))
    return tuple(seeds)


def _xrdml_seed() -> bytes:
    two_theta, counts = _patterns()[0]
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<xrdMeasurements xmlns="http://www.xrdml.com/XRDMeasurement/1.5"><xrdMeasurement measurementType="Scan">'
        '<usedWavelength intended="K-Alpha"><kAlpha1 unit="Angstrom">1.54060</kAlpha1>'
        '<kAlpha2 unit="Angstrom">1.54443</kAlpha2><ratioKAlpha2KAlpha1>0.5</ratioKAlpha2KAlpha1></usedWavelength>'
        "<scan><dataPoints>"
        f'<positions axis="2Theta" unit="deg"><startPosition>{two_theta[0]:.4f}</startPosition>'
        f"<endPosition>{two_theta[-1]:.4f}</endPosition></positions>"
        f'<intensities unit="counts">{" ".join(f"{c:.0f}" for c in counts)}</intensities>'
        "</dataPoints></scan></xrdMeasurement></xrdMeasurements>"
    ).encode()


PATTERN_SEEDS = _pattern_seeds()
XRDML_SEEDS = (("scan.xrdml", _xrdml_seed()),)


def _read_and_grid(data: bytes, name: str, wavelength: str | None = None) -> None:
    from matconcept.encoders.xrd import measured_on_grid, read_pattern

    read = read_pattern(data, name=name)
    measured_on_grid(read.two_theta, read.intensity, wavelength=wavelength or read.wavelength, name=name)


def test_pattern_seeds_are_read():
    for name, seed in (*PATTERN_SEEDS, *XRDML_SEEDS):
        _read_and_grid(seed, name)


@settings(FUZZ, max_examples=PATTERN_EXAMPLES)
@given(mutant=mutants(PATTERN_SEEDS), wavelength=st.sampled_from((None, "Cu", "Mo", "0.4133", "Ag Ka1")))
def test_mutated_patterns_end_in_a_pattern_error_or_a_grid(mutant, wavelength):
    name, data = mutant
    _run("pattern", lambda: _read_and_grid(data, name, wavelength))


@settings(FUZZ, max_examples=XRDML_EXAMPLES)
@given(mutant=mutants(XRDML_SEEDS))
def test_mutated_xrdml_ends_in_a_pattern_error_or_a_grid(mutant):
    name, data = mutant
    _run("xrdml", lambda: _read_and_grid(data, name))
