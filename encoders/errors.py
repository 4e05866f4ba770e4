"""The one error type for bad structure or pattern input.

Every layer above (CLI, ingest report, gRPC/HTTP service) turns this into a machine-readable
``reason`` plus a human message that names the offending file or entry, so a client never sees a
traceback and a batch never stops on one bad file.
"""

from __future__ import annotations

from enum import StrEnum


class InputErrorReason(StrEnum):
    """Why an input was rejected (stable strings: they appear in reports and API errors)."""

    EMPTY = "empty"
    """The input has no content at all."""
    TOO_LARGE = "too_large"
    """The input is larger than the configured byte limit."""
    UNREADABLE = "unreadable"
    """The file cannot be read (missing, a directory, permission, not text)."""
    NOT_CIF = "not_cif"
    """The text is not a CIF that pymatgen can turn into a structure."""
    NOT_STRUCTURE = "not_structure"
    """A non-CIF format (pymatgen JSON, POSCAR) that does not describe a structure."""
    NO_ATOMS = "no_atoms"
    """The structure parsed but holds no atomic sites."""
    UNKNOWN_ELEMENT = "unknown_element"
    """A site names an element that does not exist or lies outside Z = 1..100."""
    NON_FINITE = "non_finite"
    """A coordinate or lattice parameter is NaN or infinite (or absurdly large), or the cell has no
    volume or is degenerate (flatter than 0.1 Å, an edge over 1000 Å)."""
    OVERLAPPING_ATOMS = "overlapping_atoms"
    """Two fully occupied sites are closer than the minimum distance."""
    TOO_MANY_SITES = "too_many_sites"
    """The primitive cell has more sites than the configured limit."""
    BAD_PATTERN = "bad_pattern"
    """A measured XRD pattern is unusable (no numeric rows, NaN, no intensity in range...)."""
    FEATURIZE_FAILED = "featurize_failed"
    """The structure passed every check but graph or XRD construction failed (a bug to report)."""


class StructureInputError(ValueError):
    """A structure (or XRD pattern) input was rejected.

    Attributes:
        reason: Machine-readable cause, one of :class:`InputErrorReason`.
        source: The file name, archive entry or request field the input came from.
        detail: Human explanation of what is wrong with it.
    """

    def __init__(self, reason: InputErrorReason, source: str, detail: str) -> None:
        self.reason = InputErrorReason(reason)
        self.source = source
        self.detail = detail
        super().__init__(f"{source}: {detail}")

    def __reduce__(self) -> tuple:
        # Rebuilt from all three fields: the default (ValueError's args) would call __init__ with the
        # message only and fail, which hangs a process pool that sends this error back.
        return type(self), (self.reason, self.source, self.detail)

    @property
    def message(self) -> str:
        """The human message: names the input and says what is wrong."""
        return str(self)

    def to_dict(self) -> dict[str, str]:
        """The JSON form used by ``matconcept embed``, ingest reports and the API."""
        return {"reason": self.reason.value, "message": self.message}
