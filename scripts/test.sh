#!/usr/bin/env bash
# Run the whole test suite headless (napari under Xvfb with PyQt6).  Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
export QT_QPA_PLATFORM=${QT_QPA_PLATFORM:-xcb}
export NAPARI_VSR_ARTIFACTS=${NAPARI_VSR_ARTIFACTS:-$PWD/artifacts}
exec xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python -m pytest "$@"
