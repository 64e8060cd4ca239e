"""A small per-frame line plot (PSNR and SSIM) drawn with QPainter, so no plotting dependency.

Clicking the plot picks the frame nearest to the click (``frame_clicked``); the frame shown in
the viewer is marked with a vertical line (:meth:`MetricsPlot.set_current`).
"""

from __future__ import annotations

import math

from qtpy.QtCore import QPointF, Qt, Signal
from qtpy.QtGui import QColor, QPainter, QPen
from qtpy.QtWidgets import QSizePolicy, QWidget

PSNR_COLOR = QColor(80, 170, 255)
SSIM_COLOR = QColor(255, 170, 60)
MARKER_COLOR = QColor(230, 230, 230)

# plot margins in pixels: left, right, top, bottom
_MARGINS = (44, 44, 14, 20)


class MetricsPlot(QWidget):
    """PSNR (dB, left scale, blue) and SSIM (right scale, orange) against the frame index.

    Signals
    -------
    frame_clicked(int)
        The frame (as given to :meth:`set_data`) whose point is nearest to a click.
    """

    frame_clicked = Signal(int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setMinimumHeight(70)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setToolTip("PSNR (blue, dB) and SSIM (orange) per frame; click a point to show "
                        "that frame in the viewer")
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self._frames: list[int] = []
        self._psnr: list[float] = []
        self._ssim: list[float] = []
        self._current: int | None = None

    def set_data(self, frames: list[int], psnr: list[float], ssim: list[float]) -> None:
        """Replace the curves; ``inf`` PSNR values (identical frames) are drawn at the top."""
        self._frames, self._psnr, self._ssim = list(frames), list(psnr), list(ssim)
        self.update()

    def set_current(self, frame: int | None) -> None:
        """Mark ``frame`` with a vertical line (None: no mark)."""
        if frame != self._current:
            self._current = frame
            self.update()

    def _span(self) -> tuple[int, int, int, int]:
        left, right, top, bottom = _MARGINS
        return left, top, max(self.width() - left - right, 1), max(self.height() - top - bottom,
                                                                   1)

    def x_of(self, frame: float) -> float:
        """Horizontal widget coordinate of ``frame`` (the data must be set)."""
        left, _, w, _ = self._span()
        f0, f1 = self._frames[0], self._frames[-1]
        return left + (frame - f0) / max(f1 - f0, 1) * w

    def frame_at(self, x: float) -> int | None:
        """The frame whose point is nearest to widget column ``x``, or None without data."""
        if not self._frames:
            return None
        return min(self._frames, key=lambda f: abs(self.x_of(f) - x))

    def mousePressEvent(self, event) -> None:  # noqa: N802 - Qt API
        if event.button() == Qt.MouseButton.LeftButton:
            frame = self.frame_at(event.position().x())
            if frame is not None:
                self.frame_clicked.emit(frame)
                event.accept()
                return
        super().mousePressEvent(event)

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt API
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.fillRect(self.rect(), QColor(38, 41, 48))
        left, top, w, h = self._span()
        p.setPen(QPen(QColor(120, 120, 120)))
        p.drawRect(left, top, w, h)
        if not self._frames:
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "no metrics yet")
            p.end()
            return
        finite = [v for v in self._psnr if math.isfinite(v)]
        lo = math.floor(min(finite)) if finite else 0.0
        hi = math.ceil(max(finite)) if finite else 1.0
        if hi - lo < 1:
            hi = lo + 1
        s_lo = min(min(self._ssim), 0.9) if self._ssim else 0.0
        f0, f1 = self._frames[0], self._frames[-1]

        def y_of(v: float, a: float, b: float) -> float:
            v = b if not math.isfinite(v) else v
            return top + h - (v - a) / (b - a) * h

        if self._current is not None and f0 <= self._current <= f1:
            p.setPen(QPen(MARKER_COLOR, 1, Qt.PenStyle.DashLine))
            xc = self.x_of(self._current)
            p.drawLine(QPointF(xc, top), QPointF(xc, top + h))
        for values, a, b, color in ((self._psnr, lo, hi, PSNR_COLOR),
                                    (self._ssim, s_lo, 1.0, SSIM_COLOR)):
            p.setPen(QPen(color, 2))
            pts = [QPointF(self.x_of(f), y_of(v, a, b))
                   for f, v in zip(self._frames, values, strict=True)]
            for a_pt, b_pt in zip(pts, pts[1:], strict=False):
                p.drawLine(a_pt, b_pt)
            for pt in pts:
                p.drawEllipse(pt, 2, 2)
        p.setPen(PSNR_COLOR)
        p.drawText(2, top + 10, f"{hi:g}")
        p.drawText(2, top + h, f"{lo:g}")
        p.drawText(2, top + h // 2, "dB")
        p.setPen(SSIM_COLOR)
        p.drawText(left + w + 4, top + 10, "1.0")
        p.drawText(left + w + 4, top + h, f"{s_lo:.2f}")
        p.drawText(left + w + 4, top + h // 2, "SSIM")
        p.setPen(QColor(200, 200, 200))
        p.drawText(left, top + h + 15, f"frame {f0}")
        p.drawText(left + w - 60, top + h + 15, f"frame {f1}")
        p.end()
