#!/usr/bin/env bash
# Re-link the strict editable install after adding or removing a module (serialized: several
# shells may run it at once). Usage: bash scripts/dev_install.sh [python]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${1:-python3}"
exec 9>/tmp/meseta-dev-install.lock
flock 9
"$PYTHON" -m pip install -q --no-deps --no-build-isolation -e . --config-settings editable_mode=strict
