"""``napari-vsr recipes``: list, show, check and ops through the real entry point."""

from __future__ import annotations

import json

import yaml

from napari_vsr.classic import OPERATORS, PRESETS, Pipeline
from napari_vsr.cli import main


def test_list_shows_every_preset_with_its_description(capsys):
    assert main(["recipes", "list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == len(PRESETS)
    for line, (name, preset) in zip(out, PRESETS.items(), strict=True):
        assert line.startswith(name) and preset.description in line
    assert any(line.startswith("seed") and " x4 " in line for line in out)


def test_show_save_check_and_load_round_trip(capsys, tmp_path):
    assert main(["recipes", "show", "seed"]) == 0
    text = capsys.readouterr().out
    assert yaml.safe_load(text)["steps"][0] == {"op": "laplacian_sharpen", "strength": 1.0}
    path = tmp_path / "my-seed.yaml"
    path.write_text(text)
    assert main(["recipes", "check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "OK" in out and "3 step(s)" in out and "scale x4" in out
    assert Pipeline.from_file(path) == PRESETS["seed"]


def test_show_json(capsys, tmp_path):
    assert main(["recipes", "show", "microscopy-clahe", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [s["op"] for s in data["steps"]] == ["nl_means", "clahe"]
    path = tmp_path / "m.json"
    path.write_text(json.dumps(data))
    assert main(["recipes", "check", str(path)]) == 0


def test_check_reports_the_bad_step_and_exits_2(capsys, tmp_path):
    path = tmp_path / "bad.yml"
    path.write_text("steps:\n  - op: laplacian_sharpen\n  - op: median_filter\n    size: 4\n")
    assert main(["recipes", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "step 2 (median_filter): parameter 'size' = 4 is invalid; expected an odd integer" in err


def test_check_missing_file_exits_1(capsys, tmp_path):
    assert main(["recipes", "check", str(tmp_path / "nope.yaml")]) == 1
    assert "recipe file not found" in capsys.readouterr().err


def test_show_unknown_preset_exits_2(capsys):
    assert main(["recipes", "show", "sharpest"]) == 2
    assert "known presets: seed" in capsys.readouterr().err


def test_ops_lists_every_operator_and_parameter(capsys):
    assert main(["recipes", "ops"]) == 0
    out = capsys.readouterr().out
    for name, spec in OPERATORS.items():
        assert f"  {name}: " in out
        for param in spec.params:
            assert f"      {param} = " in out
    assert 'interpolation = "bicubic"' in out
