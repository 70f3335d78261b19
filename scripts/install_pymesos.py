"""Install pymesos 0.3.15 (the real Mesos client our tests drive) on Python >= 3.11.

pymesos needs http-parser 0.9.0, whose C extension no longer compiles on
Python 3.11 (it includes `longintrepr.h`). The package ships a pure-Python
parser that pymesos falls back to, so we build http-parser without its
extension: download the sdist, switch the binary build off in its setup.py,
install it, then install pymesos. Run with the interpreter of the target
environment: `python scripts/install_pymesos.py`.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

HTTP_PARSER = "http-parser==0.9.0"
PYMESOS = "pymesos==0.3.15"


def pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", *args], check=True)


def main() -> int:
    try:
        import http_parser  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "-q",
                    "--no-deps",
                    "--no-binary",
                    ":all:",
                    "-d",
                    tmp,
                    HTTP_PARSER,
                ],
                check=True,
            )
            sdist = next(Path(tmp).glob("http-parser-*.tar.gz"))
            with tarfile.open(sdist) as archive:
                archive.extractall(tmp, filter="data")
            source = next(p for p in Path(tmp).iterdir() if p.is_dir())
            setup = source / "setup.py"
            setup.write_text(
                setup.read_text().replace("run_setup(not IS_PYPY)", "run_setup(False)")
            )
            pip(str(source))
    pip(PYMESOS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
