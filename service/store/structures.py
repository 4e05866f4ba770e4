"""A material's crystal structure, kept in the store beside its vectors, and given back as a file.

Each point carries, besides the indexed metadata of
:class:`~matconcept.service.store.records.MaterialPayload`, these payload fields (:data:`STRUCTURE_FIELDS`):

``structure_zlib``
    base64(zlib(pymatgen JSON of the primitive cell the model embedded)), ``Structure.as_dict(verbosity=0)``:
    lattice, species with occupancies and fractional coordinates, exact (JSON floats round-trip).
``original_zlib``
    base64(zlib(the input file's bytes)), where the material came from a file (an upload, a CIF of a
    collection); absent for structures made in memory (the AFLOW prototypes, pymatgen's samples).
``original_name``
    that file's name without directories (``NaCl.cif``), for its format and a download name.

Why in the payload: the structure then lives and dies with its point (one upsert writes payload and
vectors together, a delete removes both), and moves with snapshots. Why compressed: a CIF is 2-50 kB
of text, 3-4x smaller through zlib; pymatgen JSON of a primitive cell is a few hundred bytes so.
Why never in a search answer: both engines select the payload of hits, gets and map scrolls without
these fields (:data:`STRUCTURE_FIELDS` is excluded), so a search reads and ships what it did before;
only :meth:`~matconcept.service.store.base.VectorStore.get_structures` reads them.

:func:`render` turns a stored structure into a file: CIF (pymatgen ``CifWriter``, P1 with every site
of the primitive cell), pymatgen JSON (``Structure.as_dict()``), POSCAR, or the original file.
"""

from __future__ import annotations

import base64
import json
import re
import warnings
import zlib
from collections.abc import Mapping
from pathlib import PurePath
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from pymatgen.core import Structure

STRUCTURE_FIELDS: tuple[str, ...] = ("structure_zlib", "original_zlib", "original_name")
"""Payload fields that hold a material's structure; excluded from every payload selection but
:meth:`~matconcept.service.store.base.VectorStore.get_structures`."""

ZLIB_LEVEL = 9
"""Compression level: written once per material, read rarely; 9 is a few percent smaller than 6."""

StructureFormatOut = Literal["cif", "json", "poscar", "original"]
"""What a stored structure can be given back as."""
FORMATS: tuple[str, ...] = ("cif", "json", "poscar", "original")

MEDIA_TYPES: dict[str, str] = {
    "cif": "chemical/x-cif",
    "json": "application/json",
    "poscar": "text/plain",
}
"""Content types of the files: ``chemical/x-cif`` is the conventional (unregistered) CIF type."""
SUFFIXES: dict[str, str] = {"cif": ".cif", "json": ".json", "poscar": ".vasp"}
"""File name suffixes (``.vasp`` is a POSCAR that pymatgen and VESTA recognise by name)."""
_UNSAFE = re.compile(r"[^A-Za-z0-9._+=-]+")


class StructureUnavailable(ValueError):
    """The structure cannot be given in this format: ``reason`` is ``no_structure``, ``no_original``
    (not found) or ``unsupported_format`` (e.g. a disordered structure as POSCAR)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def no_structure(material_id: str) -> StructureUnavailable:
    """The error for a point stored before structures were kept."""
    return StructureUnavailable(
        "no_structure", f"{material_id}: stored without its structure (an older ingest); ingest it again"
    )


def compress(data: bytes) -> str:
    """base64 text of zlib-compressed bytes (Qdrant payloads are JSON: text, not bytes)."""
    return base64.b64encode(zlib.compress(data, ZLIB_LEVEL)).decode("ascii")


def decompress(text: str) -> bytes:
    return zlib.decompress(base64.b64decode(text))


def compress_structure(structure: Structure) -> str:
    """The ``structure_zlib`` field of a structure: compact pymatgen JSON, compressed."""
    return compress(json.dumps(structure.as_dict(verbosity=0), separators=(",", ":")).encode())


def file_name(name: str | None) -> str | None:
    """A file name without directories or archive path (``a.tar!x/NaCl.cif`` → ``NaCl.cif``), or None."""
    if not name:
        return None
    base = PurePath(name.rsplit("!", 1)[-1].replace("\\", "/")).name
    return base or None


def decode_text(data: bytes) -> str:
    """A structure file's text: UTF-8, else Latin-1 (old CIFs), as the parser reads it."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


class StoredStructure(BaseModel):
    """A material's structure as the payload keeps it (compressed); see the module docstring."""

    structure_zlib: str = Field(description="base64(zlib(pymatgen JSON of the primitive cell))")
    original_zlib: str | None = Field(default=None, description="base64(zlib(the input file's bytes))")
    original_name: str | None = Field(default=None, description="the input file's name, without directories")

    @classmethod
    def of(cls, structure: Structure, original: bytes | None = None, name: str | None = None) -> StoredStructure:
        """Compress ``structure`` (the primitive cell as embedded) and, when given, the file it came from."""
        return cls(
            structure_zlib=compress_structure(structure),
            original_zlib=compress(original) if original is not None else None,
            original_name=file_name(name) if original is not None else None,
        )

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> StoredStructure | None:
        """The structure fields of a stored payload, or None for a point stored before they were kept."""
        if not payload.get("structure_zlib"):
            return None
        return cls.model_validate({k: payload.get(k) for k in STRUCTURE_FIELDS})

    def to_payload(self) -> dict[str, str]:
        """The payload fields to store (absent ones are left out, not stored as null)."""
        return self.model_dump(exclude_none=True)

    def structure_dict(self) -> dict[str, Any]:
        """The primitive cell as pymatgen's ``Structure.as_dict(verbosity=0)``."""
        return json.loads(decompress(self.structure_zlib))

    def pymatgen(self) -> Structure:
        """The primitive cell as a pymatgen ``Structure``."""
        from pymatgen.core import Structure

        return Structure.from_dict(self.structure_dict())

    def original(self) -> bytes | None:
        """The input file's bytes, or None where the material was not read from a file."""
        return decompress(self.original_zlib) if self.original_zlib else None


class StructureFile(BaseModel):
    """A stored structure as a file: its text, format, a download name and a content type."""

    content: str = Field(description="the file's text")
    format: StructureFormatOut
    filename: str = Field(description='a download name, e.g. "cod_1000000.cif"')
    media_type: str = Field(description='content type, e.g. "chemical/x-cif"')


def _stem(material_id: str) -> str:
    return _UNSAFE.sub("_", material_id.replace(":", "_")).strip("._") or "structure"


def _format_of_name(name: str) -> str | None:
    lower = name.lower()
    if lower.endswith((".cif", ".mcif")):
        return "cif"
    if lower.endswith(".json"):
        return "json"
    if lower.endswith(".vasp") or PurePath(lower).name.startswith(("poscar", "contcar")):
        return "poscar"
    return None


def render(material_id: str, stored: StoredStructure | None, fmt: StructureFormatOut) -> StructureFile:
    """The stored structure of ``material_id`` as a ``fmt`` file.

    Raises:
        StructureUnavailable: nothing stored (a point from before structures were kept), no original
            file (a structure made in memory), or POSCAR of a disordered structure.
        ValueError: an unknown format.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if stored is None:
        raise no_structure(material_id)
    stem = _stem(material_id)
    if fmt == "original":
        data = stored.original()
        if data is None:
            raise StructureUnavailable(
                "no_original",
                f"{material_id}: was not read from a file (a built-in structure); ask for cif, json or poscar",
            )
        name = _UNSAFE.sub("_", stored.original_name or "") or stem
        kind = _format_of_name(name)
        media = MEDIA_TYPES.get(kind, "text/plain") if kind else "text/plain"
        return StructureFile(content=decode_text(data), format="original", filename=name, media_type=media)
    structure = stored.pymatgen()
    if fmt == "json":
        content = json.dumps(structure.as_dict(), indent=1)
    elif fmt == "cif":
        from pymatgen.io.cif import CifWriter

        structure = structure.copy().relabel_sites()  # CIF site labels must be unique
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            content = str(CifWriter(structure))
    else:
        if not structure.is_ordered:
            raise StructureUnavailable(
                "unsupported_format",
                f"{material_id}: a disordered structure (partial occupancies) has no POSCAR; ask for cif or json",
            )
        from pymatgen.io.vasp import Poscar

        content = Poscar(structure, comment=material_id).get_str()
    return StructureFile(content=content, format=fmt, filename=stem + SUFFIXES[fmt], media_type=MEDIA_TYPES[fmt])
