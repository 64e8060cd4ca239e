"""Time the Compare widget's wipe: one divider move and one time step on x4-size frames.

Run under Xvfb (the numbers include napari's own slicing and the texture upload)::

    QT_QPA_PLATFORM=xcb xvfb-run -a -s "-screen 0 1600x1000x24" \
        python benchmarks/bench_wipe.py [--frames 6] [--moves 20]

The source is the demo_000 sample clip (360x640 RGB), the right layer its bicubic x4
(1440x2560 RGB, numpy in memory).  Printed: median and worst milliseconds per divider move and
per time step, measured from the change to the end of the resulting event processing (draw
included), and the part spent in the change itself (the widget's handler and napari's layer
updates, before the draw).  Other processes on the machine make single samples noisy: compare
medians of runs made one after another.
"""

from __future__ import annotations

import argparse
import statistics
import time

import cv2
import numpy as np


def _clip(n: int) -> np.ndarray:
    from benchlib import default_samples

    paths = sorted(default_samples().glob("*.png"))[:n]
    return np.stack([cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in paths])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--moves", type=int, default=20)
    args = parser.parse_args()

    import napari
    from qtpy.QtWidgets import QApplication

    from napari_vsr.placement import result_placement

    src = _clip(args.frames)
    big = np.stack([cv2.resize(f, (2560, 1440), interpolation=cv2.INTER_CUBIC) for f in src])
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1500, 950)
    a = viewer.add_image(src, name="source")
    scale, translate = result_placement(a.scale, a.translate, 4)
    viewer.add_image(big, name="result", scale=scale, translate=translate)
    _, widget = viewer.window.add_plugin_dock_widget("napari-vsr", "Compare layers")
    widget.set_layers("source", "result")
    widget.wipe_check.setChecked(True)
    app = QApplication.instance()
    for _ in range(5):
        app.processEvents()

    def timed(action) -> tuple[float, float]:
        t0 = time.perf_counter()
        action()
        t1 = time.perf_counter()
        app.processEvents()
        return (t1 - t0) * 1000, (time.perf_counter() - t0) * 1000

    moves = [timed(lambda v=v: widget.wipe_slider.setValue(v))
             for v in np.linspace(100, 900, args.moves).astype(int)]
    steps = [timed(lambda t=t: viewer.dims.set_point(0, t))
             for t in list(range(args.frames)) * 3]
    redraws = [timed(viewer.window._qt_viewer.canvas._scene_canvas.update)
               for _ in range(10)]
    for label, values in (("divider move", moves), ("time step", steps),
                          ("redraw only", redraws)):
        change = [c for c, _ in values]
        total = [t for _, t in values]
        print(f"{label:13s}: change median {statistics.median(change):6.1f} ms "
              f"(max {max(change):6.1f}), with draw median {statistics.median(total):6.1f} ms "
              f"(max {max(total):6.1f}); {len(values)} samples")
    viewer.close()


if __name__ == "__main__":
    main()
