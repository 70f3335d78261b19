"""Regenerate the committed protobuf modules, or check that they are current.

    python scripts/gen_protos.py          # rewrite the *_pb2.py / *_pb2.pyi files
    python scripts/gen_protos.py --check  # exit 1 if a committed file is stale

Needs grpcio-tools (the `dev` extra). The protos are compiled under the import
path `meseta/...` so the descriptor pool names them after the package.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Every schema we own or vendor; the Mesos wire types live under proto/mesos/v1.
PROTOS = sorted(
    str(path.relative_to(ROOT))
    for folder in ("log", "master", "proto")
    for path in (ROOT / folder).rglob("*.proto")
)


def generate(out_dir: Path) -> list[Path]:
    from grpc_tools import protoc  # type: ignore[import-untyped]

    with tempfile.TemporaryDirectory() as src:
        tree = Path(src) / "meseta"
        for proto in PROTOS:
            (tree / proto).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / proto, tree / proto)
        well_known = Path(protoc.__file__).parent / "_proto"  # google/protobuf/*.proto
        args = ["protoc", f"-I{src}", f"-I{well_known}"]
        args += [f"--python_out={out_dir}", f"--pyi_out={out_dir}"]
        args += [f"meseta/{proto}" for proto in PROTOS]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed")
    generated = []
    for proto in PROTOS:
        stem = proto.removesuffix(".proto")
        generated += [Path(f"{stem}_pb2.py"), Path(f"{stem}_pb2.pyi")]
    return generated


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="only compare, do not write")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as out:
        out_dir = Path(out)
        stale = []
        for relative in generate(out_dir):
            fresh = out_dir / "meseta" / relative
            committed = ROOT / relative
            if options.check:
                if not committed.exists() or not filecmp.cmp(fresh, committed, shallow=False):
                    stale.append(str(relative))
            else:
                shutil.copy(fresh, committed)
        if stale:
            print("stale generated files (run python scripts/gen_protos.py):", *stale)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
