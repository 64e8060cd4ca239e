"""``napari-vsr view``: napari with the sample (or a path) and both widgets docked."""

from __future__ import annotations

import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from napari_vsr.cli import main  # noqa: E402
from napari_vsr.cli.view import open_viewer  # noqa: E402
from napari_vsr.widgets import CompareWidget, EnhanceWidget  # noqa: E402


def test_view_opens_sample_and_docks_widgets(qtbot):
    viewer = open_viewer(sample=True, show=False)
    try:
        assert [layer.name for layer in viewer.layers] == ["demo_000"]
        assert viewer.layers[0].data.shape == (10, 360, 640, 3)
        docked = list(viewer.window.dock_widgets.values())
        assert any(isinstance(w, EnhanceWidget) for w in docked)
        assert any(isinstance(w, CompareWidget) for w in docked)
        enhance = next(w for w in docked if isinstance(w, EnhanceWidget))
        assert enhance.source_combo.currentText() == "demo_000"
    finally:
        viewer.close()


def test_view_missing_path_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert main(["view", str(tmp_path / "nope.mp4")]) == 1
    err = capsys.readouterr().err
    assert "nope.mp4" in err and len(err.strip().splitlines()) == 1
