"""Regenerate the Python gRPC stubs of ``proto/matconcept/v1/*.proto`` with grpcio-tools.

    python proto/generate.py            # writes service/app/rpc/*_pb2.py, *_pb2_grpc.py, *_pb2.pyi
    python proto/generate.py --check    # exit 1 if the committed stubs differ (tests/test_proto.py)

Why the stubs live in ``service/app/rpc`` and not beside the contract: ``ray[serve]`` pulls in
``proto-plus``, whose top-level package is also called ``proto`` and shadows this directory on
every ``sys.path`` except the repository root (Ray workers, installed tools), so ``import proto``
cannot be relied on. The contract keeps its canonical name ``matconcept/v1/matconcept.proto`` (the
file name registered in the protobuf descriptor pool and shown by gRPC reflection); the one
package import protoc writes into ``*_pb2_grpc.py`` and the module name the messages are built under in
``*_pb2.py`` are rewritten to ``matconcept.service.app.rpc``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

PROTO_ROOT = Path(__file__).resolve().parent
"""The ``-I`` root: ``.proto`` files are named relative to it (``matconcept/v1/matconcept.proto``)."""
PROTO_FILES = sorted(PROTO_ROOT.glob("matconcept/v1/*.proto"))
OUTPUT = PROTO_ROOT.parent / "service" / "app" / "rpc"
"""Where the generated modules are committed (the importable ``matconcept.service.app.rpc`` package)."""
PROTOC_PACKAGE = "matconcept.v1"
"""The Python package protoc assumes for generated modules (from the ``-I`` layout)."""
TARGET_PACKAGE = "matconcept.service.app.rpc"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def generate(out_dir: Path) -> list[Path]:
    """Run protoc into ``out_dir`` (flat) and return the written files."""
    from grpc_tools import protoc

    with tempfile.TemporaryDirectory() as tmp:
        include = Path(protoc.__file__).parent / "_proto"  # google/protobuf/*.proto
        args = [
            "grpc_tools.protoc",
            f"-I{PROTO_ROOT}",
            f"-I{include}",
            f"--python_out={tmp}",
            f"--pyi_out={tmp}",
            f"--grpc_python_out={tmp}",
            *(str(p.relative_to(PROTO_ROOT)) for p in PROTO_FILES),
        ]
        if protoc.main(args) != 0:
            raise RuntimeError(f"protoc failed on {[str(p) for p in PROTO_FILES]}")
        written = []
        out_dir.mkdir(parents=True, exist_ok=True)
        for path in sorted(Path(tmp).rglob("*")):
            if not path.name.endswith(GENERATED_SUFFIXES):
                continue
            text = path.read_text().replace(f"from {PROTOC_PACKAGE} import", f"from {TARGET_PACKAGE} import")
            # The module name the message classes are built under (pickling, e.g. by Ray, imports it).
            module = path.name.removesuffix(".py").removesuffix(".pyi")
            text = text.replace(f"'{PROTOC_PACKAGE}.{module}'", f"'{TARGET_PACKAGE}.{module}'")
            target = out_dir / path.name
            target.write_text(text)
            written.append(target)
    return written


def stale(committed: Path = OUTPUT) -> list[str]:
    """Names of generated files that are missing or differ from a fresh generation."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(Path(tmp))
        return [
            p.name
            for p in fresh
            if not (committed / p.name).exists() or (committed / p.name).read_text() != p.read_text()
        ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that the committed stubs are current")
    args = parser.parse_args(argv)
    if args.check:
        names = stale()
        if names:
            print(f"stale gRPC stubs in {OUTPUT}: {', '.join(names)}; run python proto/generate.py", file=sys.stderr)
            return 1
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        for path in generate(Path(tmp)):
            shutil.copyfile(path, OUTPUT / path.name)
            print(OUTPUT / path.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
