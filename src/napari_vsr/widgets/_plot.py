"""A small per-frame line plot (PSNR and SSIM) drawn with QPainter, so no plotting dependency."""

from __future__ import annotations

import math

from qtpy.QtCore import QPointF, Qt
from qtpy.QtGui import QColor, QPainter, QPen
from qtpy.QtWidgets import QSizePolicy, QWidget

PSNR_COLOR = QColor(80, 170, 255)
SSIM_COLOR = QColor(255, 170, 60)


class MetricsPlot(QWidget):
    """PSNR (dB, left scale, blue) and SSIM (right scale, orange) against the frame index."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setMinimumHeight(120)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self._frames: list[int] = []
        self._psnr: list[float] = []
        self._ssim: list[float] = []

    def set_data(self, frames: list[int], psnr: list[float], ssim: list[float]) -> None:
        """Replace the curves; ``inf`` PSNR values (identical frames) are drawn at the top."""
        self._frames, self._psnr, self._ssim = list(frames), list(psnr), list(ssim)
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt API
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.fillRect(self.rect(), QColor(38, 41, 48))
        left, right, top, bottom = 44, 44, 16, 20
        w = max(self.width() - left - right, 1)
        h = max(self.height() - top - bottom, 1)
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
        span = max(f1 - f0, 1)

        def x_of(f: int) -> float:
            return left + (f - f0) / span * w

        def y_of(v: float, a: float, b: float) -> float:
            v = b if not math.isfinite(v) else v
            return top + h - (v - a) / (b - a) * h

        for values, a, b, color in ((self._psnr, lo, hi, PSNR_COLOR),
                                    (self._ssim, s_lo, 1.0, SSIM_COLOR)):
            p.setPen(QPen(color, 2))
            pts = [QPointF(x_of(f), y_of(v, a, b)) for f, v in zip(self._frames, values,
                                                                   strict=True)]
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
