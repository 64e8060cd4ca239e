#!/usr/bin/env bash
# Retake the README screenshots (napari under Xvfb, the widgets docked as users get them) and
# copy them to docs/screenshots/.  Look at them before committing.
set -euo pipefail
cd "$(dirname "$0")/.."
export NAPARI_VSR_ARTIFACTS=${NAPARI_VSR_ARTIFACTS:-$PWD/artifacts}
bash scripts/test.sh -q -p no:cacheprovider tests/qt/test_readme_screenshots.py
mkdir -p docs/screenshots
cp "$NAPARI_VSR_ARTIFACTS"/readme/*.png docs/screenshots/
ls -l docs/screenshots
