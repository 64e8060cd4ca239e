"""Every case of the stack corpus through ``info`` and ``enhance --method classic``.

The bar a user sees: exit code 0, 1 or 2, exactly one line on stderr (the error, or "wrote N
frames"), no traceback, and nothing left beside the output but the output itself.  stderr is
captured at the file-descriptor level, so lines printed by C libraries (OpenCV, libpng) count.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from napari_vsr.cli import main

_spec = importlib.util.spec_from_file_location(
    "corpus_stacks", Path(__file__).with_name("corpus_stacks.py")
)
corpus = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(corpus)

#: what each case must give: exit code of info, exit code of enhance, words in the error line
EXPECTED = {
    "two_channel_imagej": (0, 0, "wrote 6 frames"),
    "hyperstack_tzcyx": (0, 0, "wrote 3 frames"),
    "compressed_lzw": (0, 0, "wrote 6 frames"),
    "compressed_zstd": (0, 0, "wrote 6 frames"),
    "truncated_data": (1, 1, "the file is truncated"),
    "truncated_ifd": (1, 1, "the file is truncated"),
    "truncated_header": (1, 1, "truncated or"),
    "corrupt_header": (1, 1, "no readable page directory"),
    "empty_folder": (1, 1, "no image frames (png/jpg/tif/bmp) in this folder (it is empty)"),
    "text_only_folder": (1, 1, "no image frames (png/jpg/tif/bmp) in this folder (it holds 1"),
    "corrupt_png_folder": (0, 1, "frame_1.png: not a readable image"),
    "mixed_size_folder": (1, 1, "frames differ in size"),
}


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> dict[str, Path]:
    return corpus.build(tmp_path_factory.mktemp("corpus_stacks"))


def test_corpus_has_every_expected_case(cases):
    assert sorted(cases) == sorted(EXPECTED)
    assert all(p.exists() for p in cases.values())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_case_gives_one_clean_line(cases, name, tmp_path, capfd):
    path = cases[name]
    info_rc, enhance_rc, words = EXPECTED[name]
    rc = main(["info", str(path)])
    err = capfd.readouterr().err
    assert rc == info_rc, err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == (0 if rc == 0 else 1), err
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "result.tif"
    rc = main(["enhance", str(path), "-o", str(out), "--method", "classic", "-q"])
    err = capfd.readouterr().err
    assert rc == enhance_rc, err
    assert rc in (0, 1, 2) and "Traceback" not in err
    [line] = err.strip().splitlines()
    assert words in line
    if rc:
        assert str(path) in line
    assert sorted(p.name for p in out_dir.iterdir()) == (["result.tif"] if rc == 0 else [])
