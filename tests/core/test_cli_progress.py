"""The CLI's progress bar formats through the one format_progress (stage, segments, bytes)."""

from __future__ import annotations

import io

from napari_vsr.cli.progress import ProgressBar
from napari_vsr.jobs.progress import Progress, format_progress


def test_bar_lines_use_format_progress():
    out = io.StringIO()
    bar = ProgressBar("enhance", stream=out, width=10, interval_s=0.0)
    p = Progress(12, 40, 4.0, 3.0, 9.5, segments_done=1, segments_total=4)
    bar(p)
    bar(Progress(3_100_000, 20_000_000, 1.0, 0.0, None, stage="downloading weights",
                 unit="bytes"))
    bar(Progress(5, None, 1.0, 0.0, None, stage="downloading weights", unit="bytes"))
    bar(Progress(40, 40, 8.0, 5.0, 0.0, stage="assembling"))
    lines = out.getvalue().splitlines()
    assert lines[0] == f"enhance [###.......]  30% {format_progress(p)}"
    assert "(segments 1/4)" in lines[0] and "ETA 0:10" in lines[0]
    assert lines[1].endswith("downloading weights: 3.1 MB of 20.0 MB")
    assert lines[2] == "enhance downloading weights: 0.0 MB"
    assert lines[3] == "enhance [##########] 100% assembling: 40/40 frames"
