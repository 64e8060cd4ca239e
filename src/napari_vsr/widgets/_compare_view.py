"""The View tab of the Compare widget: the wipe and side by side.

The wipe composites nothing: napari draws the right layer itself and, on top, only the
columns of the left layer left of the divider (a lazy :class:`~napari_vsr.compare.ColumnWindow`
of columns ``[0, divider)``, so its placement never changes), both in the layers' own world
coordinates; the other image layers are hidden meanwhile, as in side-by-side mode.  A divider
move swaps the window (a slice of the frame read last; usually the small source, so a small
texture) and moves the divider line; a time step is napari's own slicing, and a result that is
still growing keeps updating (its layer is the one shown).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from napari.layers import Image, Shapes
from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import QCheckBox, QComboBox, QFormLayout, QHBoxLayout, QSlider, QWidget

from napari_vsr import compare
from napari_vsr.widgets._compare_pair import (
    DIVIDER_NAME,
    OWN_LAYERS,
    PREVIEW_NAME,
    WIPE_LAYERS,
    WIPE_LEFT_NAME,
    LayerPair,
    larger,
)

if TYPE_CHECKING:
    import napari

SLIDER_STEPS = 1000
#: how the smaller layer of the wipe is drawn by napari for each "Upscaling" choice
DISPLAY_INTERPOLATION = {"nearest": "nearest", "bicubic": "cubic"}


def _grid_of(viewer):
    """The viewer's grid settings: ``viewer.canvas.grid`` since napari 0.9, ``viewer.grid`` before."""
    canvas = getattr(viewer, "canvas", None)
    return canvas.grid if canvas is not None and hasattr(canvas, "grid") else viewer.grid


class ViewTab(QWidget):
    """Wipe or side by side of the chosen pair, and how the smaller layer is enlarged.

    Signals
    -------
    message(str, bool)
        A status text, and whether it reports an error.
    """

    message = Signal(str, bool)

    def __init__(self, viewer: napari.viewer.Viewer, pair: LayerPair):
        super().__init__()
        self.viewer, self.pair = viewer, pair
        self._grid_hidden: list[str] = []
        self._wipe_hidden: list[str] = []  # image layers the wipe hid
        self._wipe_shown: list[str] = []  # the right layer, when the wipe made it visible
        self._wipe_window: compare.ColumnWindow | None = None
        self._removing_wipe = False
        lay = QFormLayout(self)
        self.wipe_check = QCheckBox("Wipe")
        self.wipe_check.setToolTip("Show the left layer left of the divider and the right layer "
                                   "right of it (drag the divider below); other image layers "
                                   "are hidden until you turn it off")
        self.wipe_check.toggled.connect(self._wipe_toggled)
        self.grid_check = QCheckBox("Side by side")
        self.grid_check.setToolTip("Show only the two layers, next to each other (napari's grid "
                                   "mode); the other layers are hidden until you turn it off")
        self.grid_check.toggled.connect(self.set_grid)
        row = QHBoxLayout()
        row.addWidget(self.wipe_check)
        row.addWidget(self.grid_check)
        row.addStretch(1)
        lay.addRow(row)
        self.wipe_slider = QSlider(Qt.Orientation.Horizontal)
        self.wipe_slider.setRange(0, SLIDER_STEPS)
        self.wipe_slider.setValue(SLIDER_STEPS // 2)
        self.wipe_slider.setToolTip("Where the divider is, from the left edge to the right edge")
        self.wipe_slider.valueChanged.connect(self.update_wipe)
        lay.addRow("Divider", self.wipe_slider)
        self.interp_combo = QComboBox()
        self.interp_combo.addItems(["nearest", "bicubic"])
        self.interp_combo.setToolTip(
            "How the smaller layer is enlarged to the larger one's size: for the metrics, in "
            "the video, and in the wipe when the smaller layer is on the left (nearest shows "
            "its pixels as blocks)")
        self.interp_combo.currentIndexChanged.connect(self._interpolation_changed)
        lay.addRow("Upscaling", self.interp_combo)

    def interpolation(self) -> str:
        """The "Upscaling" choice: ``"nearest"`` or ``"bicubic"``."""
        return self.interp_combo.currentText()

    def _status(self, text: str, *, error: bool = False) -> None:
        self.message.emit(text, error)

    # --- what the Compare widget tells this tab ---------------------------------------------
    def pair_changed(self) -> None:
        """Another pair was chosen: a wipe that is on shows it."""
        if self.wipe_check.isChecked():
            self._build_wipe()

    def rename(self, renamed: dict[str, str]) -> None:
        """Layers were renamed (old name -> new name): remember the new names."""
        self._wipe_hidden = [renamed.get(n, n) for n in self._wipe_hidden]
        self._wipe_shown = [renamed.get(n, n) for n in self._wipe_shown]
        self._grid_hidden = [renamed.get(n, n) for n in self._grid_hidden]

    def layer_removed(self, name: str | None) -> None:
        """Turn the wipe off when one of its layers, or one of the pair, is removed."""
        if name in WIPE_LAYERS and self.wipe_check.isChecked() and not self._removing_wipe:
            # the user (or closing the viewer) removed a wipe layer: the wipe is off
            self.wipe_check.setChecked(False)
        elif name in self.pair.names and self.wipe_check.isChecked():
            self.wipe_check.setChecked(False)

    def _interpolation_changed(self, index=None) -> None:
        left, right = self.pair.left, self.pair.right
        if self.wipe_check.isChecked() and WIPE_LEFT_NAME in self.viewer.layers and \
                left is not None and right is not None and \
                larger(left, right).name == right.name:
            self.viewer.layers[WIPE_LEFT_NAME].interpolation2d = DISPLAY_INTERPOLATION[
                self.interpolation()]

    # --- wipe -------------------------------------------------------------------------------
    def _wipe_toggled(self, on: bool) -> None:
        if on:
            self._status("")
            if self.grid_check.isChecked():
                self.set_grid(False)
            if PREVIEW_NAME in self.viewer.layers:
                self.viewer.layers.remove(PREVIEW_NAME)
            self._build_wipe()
        else:
            self._remove_wipe()

    def _remove_wipe(self) -> None:
        self._removing_wipe = True  # our own removals do not turn the wipe off
        try:
            for name in WIPE_LAYERS:
                if name in self.viewer.layers:
                    self.viewer.layers.remove(name)
        finally:
            self._removing_wipe = False
        for name in self._wipe_hidden:
            if name in self.viewer.layers:
                self.viewer.layers[name].visible = True
        for name in self._wipe_shown:
            if name in self.viewer.layers:
                self.viewer.layers[name].visible = False
        self._wipe_hidden, self._wipe_shown = [], []
        self._wipe_window = None

    def _build_wipe(self) -> None:
        """(Re)create the wipe for the chosen pair: the right layer shown, the left layer's
        columns before the divider on top of it, the divider line; other images hidden."""
        self._remove_wipe()
        left, right = self.pair.left, self.pair.right
        if left is None or right is None or left.name == right.name:
            self._status("choose two different image layers with a time axis for the wipe",
                         error=True)
            return
        if left.rgb != right.rgb:
            self._status(f"{left.name} and {right.name}: compare colour with colour and gray "
                         "with gray", error=True)
            return
        big = larger(left, right)
        interp = DISPLAY_INTERPOLATION[self.interpolation()]
        active = self.viewer.layers.selection.active
        active = None if active is None else active.name
        # napari takes no empty layer: a divider at column 0 hides a one-column window
        self._wipe_window = compare.ColumnWindow(left.data, 0, max(self.wipe_column(), 1))
        kwargs = {"rgb": left.rgb, "scale": tuple(left.scale),
                  "translate": tuple(left.translate),
                  "contrast_limits": list(left.contrast_limits), "gamma": left.gamma,
                  "multiscale": False,
                  "interpolation2d": interp if big.name == right.name else left.interpolation2d}
        if not left.rgb:
            kwargs["colormap"] = left.colormap
        self.viewer.add_image(self._wipe_window, name=WIPE_LEFT_NAME, **kwargs)
        y0 = big.translate[-2] - 0.5 * big.scale[-2]
        y1 = big.translate[-2] + (big.data.shape[1] - 0.5) * big.scale[-2]
        width = max(2 * big.scale[-1], big.data.shape[2] * big.scale[-1] / 600)
        divider = Shapes([np.array([[y0, 0.0], [y1, 0.0]])], shape_type="line",
                         edge_color="yellow", edge_width=width, name=DIVIDER_NAME)
        self.viewer.add_layer(divider)
        if active in self.viewer.layers:  # adding layers selected them: give the choice back
            self.viewer.layers.selection.active = self.viewer.layers[active]
        # only the pair shows (the left layer through its window): napari reads no frame twice
        for layer in self.viewer.layers:
            if isinstance(layer, Image) and layer.name not in OWN_LAYERS and \
                    layer.name != right.name and layer.visible:
                layer.visible = False
                self._wipe_hidden.append(layer.name)
        if not right.visible:
            right.visible = True
            self._wipe_shown.append(right.name)
        self.update_wipe()

    def wipe_column(self) -> int | None:
        """The divider as a column of the left layer (columns before it show the left layer),
        or None without two layers.

        The slider spans the larger layer's width in world coordinates; the divider snaps to
        the nearest pixel boundary of the left layer.
        """
        left, right = self.pair.left, self.pair.right
        if left is None or right is None:
            return None
        big = larger(left, right)
        frac = self.wipe_slider.value() / SLIDER_STEPS
        x_lo = big.translate[-1] - 0.5 * big.scale[-1]
        world_x = x_lo + frac * big.data.shape[2] * big.scale[-1]
        l_lo = left.translate[-1] - 0.5 * left.scale[-1]
        column = round((world_x - l_lo) / left.scale[-1])
        return min(max(column, 0), int(left.data.shape[2]))

    def update_wipe(self, value=None) -> None:
        """Move the divider: show the left layer's columns before :meth:`wipe_column`."""
        if not self.wipe_check.isChecked() or WIPE_LEFT_NAME not in self.viewer.layers:
            return
        left = self.pair.left
        column = self.wipe_column()
        if left is None or column is None or self._wipe_window is None:
            return
        layer = self.viewer.layers[WIPE_LEFT_NAME]
        if column != self._wipe_window.stop and column > 0:
            self._wipe_window = self._wipe_window.with_columns(0, column)
            layer.data = self._wipe_window
        if layer.visible != (column > 0):
            layer.visible = column > 0
        if DIVIDER_NAME in self.viewer.layers:
            xw = left.translate[-1] + (column - 0.5) * left.scale[-1]
            self.viewer.layers[DIVIDER_NAME].translate = (0.0, xw)

    # --- side by side -----------------------------------------------------------------------
    def set_grid(self, on: bool) -> None:
        """Show only the left and right layers, side by side (napari grid mode), or restore."""
        if on:
            self._status("")
            if self.wipe_check.isChecked():
                self.wipe_check.setChecked(False)
            keep = set(self.pair.names)
            hidden = [layer for layer in self.viewer.layers
                      if layer.visible and layer.name not in keep]
            self._grid_hidden = [layer.name for layer in hidden]
            for layer in hidden:
                layer.visible = False
            for name in keep:
                if name in self.viewer.layers:
                    self.viewer.layers[name].visible = True
            grid = _grid_of(self.viewer)
            grid.stride = 1
            grid.enabled = True
        else:
            _grid_of(self.viewer).enabled = False
            for name in self._grid_hidden:
                if name in self.viewer.layers:
                    self.viewer.layers[name].visible = True
            self._grid_hidden = []
        if self.grid_check.isChecked() != on:
            self.grid_check.blockSignals(True)
            self.grid_check.setChecked(on)
            self.grid_check.blockSignals(False)
