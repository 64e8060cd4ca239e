"""The method part of the Enhance widget: which method, and its settings.

RealBasicVSR: weights (cached / download now / a file), device and precision (only those this
machine has), tile size.  Classic: a built-in preset, a recipe file, or a pipeline built in the
widget.  :meth:`MethodPanel.method_options` gathers the form into
:class:`~napari_vsr.jobs.request.MethodOptions`.
"""

from __future__ import annotations

from pathlib import Path

from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from napari_vsr.jobs.request import MethodOptions
from napari_vsr.jobs.runner import DISPLAY_NAMES

REALBASICVSR = ("realbasicvsr", None)
RECIPE = ("classic-recipe", None)
BUILDER = ("classic-builder", None)

_PRECISION_TIPS = {
    "auto": "fp16 on a CUDA GPU, fp32 elsewhere",
    "fp32": "full precision: reproduces the reference network exactly; slowest",
    "fp16": "half precision: about twice as fast on a GPU, visually the same",
    "bf16": "bfloat16: fast on CPUs with AMX/AVX512-BF16 and recent GPUs; small differences",
}


def _presets() -> list[str]:
    try:
        from napari_vsr.classic import PRESETS
    except ImportError:  # classic part missing: RealBasicVSR only
        return []
    return list(PRESETS)


def available_devices() -> list[tuple[str, str]]:
    """(value, label) of the devices this machine can run the network on: auto, cpu, each
    CUDA GPU by name, mps where PyTorch has it."""
    devices = [("auto", "auto (GPU when there is one)"), ("cpu", "cpu")]
    try:
        import torch
    except ImportError:
        return devices
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            devices.append((f"cuda:{i}", f"cuda:{i} ({torch.cuda.get_device_name(i)})"))
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append(("mps", "mps (Apple GPU)"))
    return devices


def precisions_for(device: str) -> list[str]:
    """The precisions worth offering on ``device``: fp16 only on GPUs (on the CPU it is slow
    and partly unsupported), bf16 on the CPU and on GPUs that support it."""
    if device in ("auto", "cpu"):
        names = ["auto", "fp32", "bf16"]
        if device == "auto" and len(available_devices()) > 2:
            names.insert(2, "fp16")
        return names
    if device.startswith("cuda"):
        import torch

        names = ["auto", "fp32", "fp16"]
        if torch.cuda.is_bf16_supported():
            names.append("bf16")
        return names
    return ["auto", "fp32", "fp16"]


def path_row(placeholder: str, tooltip: str, pick) -> tuple[QWidget, QLineEdit]:
    """A line edit with a "…" browse button."""
    row = QWidget()
    lay = QHBoxLayout(row)
    lay.setContentsMargins(0, 0, 0, 0)
    edit = QLineEdit()
    edit.setPlaceholderText(placeholder)
    edit.setToolTip(tooltip)
    button = QToolButton()
    button.setText("…")
    button.setToolTip("browse")
    button.clicked.connect(lambda: pick(edit))
    lay.addWidget(edit)
    lay.addWidget(button)
    return row, edit


def auto_spin(minimum: int, maximum: int, special: str, value: int, tip: str) -> QSpinBox:
    spin = QSpinBox()
    spin.setRange(minimum, maximum)
    spin.setSpecialValueText(special)
    spin.setValue(value)
    spin.setToolTip(tip)
    return spin


class MethodPanel(QWidget):
    """Method choice and settings.  ``changed`` fires on any change that alters the job."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None, *, on_builder=None):
        super().__init__(parent)
        self.builder = None  # the pipeline builder, made when first chosen
        self._on_builder = on_builder  # called with the builder once it exists
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)

        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        lay.addLayout(form)
        self.combo = QComboBox()
        self.combo.setToolTip(
            "RealBasicVSR: a network that restores and upscales real-world video x4 "
            "(slow on a CPU).  Classic: fast per-frame filters (sharpen, denoise, resize…).")
        self.combo.addItem("RealBasicVSR x4", REALBASICVSR)
        for name in _presets():
            self.combo.addItem(f"Classic: {name}", ("classic", name))
        self.combo.addItem("Classic: build a pipeline", BUILDER)
        self.combo.addItem("Classic: recipe file…", RECIPE)
        self.combo.currentIndexChanged.connect(self._method_changed)
        form.addRow("Method", self.combo)

        # classic recipe file
        self.recipe_row, self.recipe_edit = path_row(
            "recipe .yaml or .json", "a classic recipe file (the same the command line takes)",
            self._pick_recipe)
        self.recipe_edit.textChanged.connect(self.changed)
        form.addRow("Recipe", self.recipe_row)
        self._recipe_label = form.labelForField(self.recipe_row)

        # RealBasicVSR
        self.deep = QWidget()
        deep = QFormLayout(self.deep)
        deep.setContentsMargins(0, 0, 0, 0)
        deep.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.weights_combo = QComboBox()
        self.weights_combo.addItem("cached (download if missing)", "auto")
        self.weights_combo.addItem("download now", "download")
        self.weights_combo.addItem("choose file…", "file")
        self.weights_combo.setToolTip(
            "where the network's weights come from: the local cache (the released checkpoint, "
            "downloaded once), or a checkpoint file you have")
        self.weights_combo.currentIndexChanged.connect(self._weights_changed)
        deep.addRow("Weights", self.weights_combo)
        self.weights_row, self.weights_edit = path_row(
            "checkpoint .pth", "a RealBasicVSR checkpoint file (.pth)", self._pick_weights)
        self.weights_edit.textChanged.connect(self._update_cache_label)
        deep.addRow("Checkpoint", self.weights_row)
        self._weights_label = deep.labelForField(self.weights_row)
        self.cache_label = QLabel()
        self.cache_label.setWordWrap(True)
        self.cache_label.setToolTip("what the cache holds")
        deep.addRow(self.cache_label)
        self.device_combo = QComboBox()
        for value, label in available_devices():
            self.device_combo.addItem(label, value)
        self.device_combo.setToolTip("where the network runs (only devices this machine has)")
        self.device_combo.currentIndexChanged.connect(self._device_changed)
        deep.addRow("Device", self.device_combo)
        self.precision_combo = QComboBox()
        self.precision_combo.currentIndexChanged.connect(self._precision_tip)
        deep.addRow("Precision", self.precision_combo)
        self.tile_spin = auto_spin(
            -1, 4096, "auto", -1,
            "tile side in input pixels, to fit large frames in memory (auto: from free memory; "
            "0: never tile)")
        deep.addRow("Tile", self.tile_spin)
        lay.addWidget(self.deep)

        self.builder_box = QWidget()
        QVBoxLayout(self.builder_box).setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.builder_box)

        self._device_changed()
        self._method_changed()

    # --- reactions ----------------------------------------------------------------------------
    def _method_changed(self, index=None) -> None:
        kind = self.combo.currentData()
        self.deep.setVisible(kind == REALBASICVSR)
        self.recipe_row.setVisible(kind == RECIPE)
        if self._recipe_label is not None:
            self._recipe_label.setVisible(kind == RECIPE)
        if kind == BUILDER:
            self._ensure_builder()
        self.builder_box.setVisible(kind == BUILDER)
        self._weights_changed()
        self.changed.emit()

    def _ensure_builder(self) -> None:
        if self.builder is not None:
            return
        try:
            from napari_vsr.widgets.pipeline import PipelineBuilder
        except ImportError:  # the builder is not part of this installation
            return
        self.builder = PipelineBuilder()
        self.builder.changed.connect(self.changed)
        self.builder_box.layout().addWidget(self.builder)
        if self._on_builder is not None:
            self._on_builder(self.builder)

    def _weights_changed(self, index=None) -> None:
        is_file = self.weights_combo.currentData() == "file"
        self.weights_row.setVisible(is_file)
        if self._weights_label is not None:
            self._weights_label.setVisible(is_file)
        self._update_cache_label()

    def _device_changed(self, index=None) -> None:
        current = self.precision_combo.currentText() or "auto"
        self.precision_combo.blockSignals(True)
        self.precision_combo.clear()
        names = precisions_for(self.device_combo.currentData() or "auto")
        self.precision_combo.addItems(names)
        self.precision_combo.setCurrentText(current if current in names else "auto")
        self.precision_combo.blockSignals(False)
        self._precision_tip()

    def _precision_tip(self, index=None) -> None:
        name = self.precision_combo.currentText()
        self.precision_combo.setToolTip(
            "number format of the network's arithmetic: " + _PRECISION_TIPS.get(name, name))

    def _update_cache_label(self, *args) -> None:
        if self.weights_combo.currentData() == "file":
            chosen = self.weights_edit.text().strip()
            self.cache_label.setText(f"using {Path(chosen).name}" if chosen
                                     else "choose a checkpoint file")
            return
        try:
            from napari_vsr.models import weights as wm

            cached = wm.cached_path()
        except Exception as exc:  # weights manager missing or broken: say so, do not fail
            self.cache_label.setText(f"the weights cache cannot be read ({exc})")
            return
        if cached is not None:
            self.cache_label.setText(f"cached: {cached}")
        else:
            size = wm.get_entry().size / 1e6
            self.cache_label.setText(f"not cached yet: the released checkpoint ({size:.0f} MB) "
                                     "is downloaded on the first run")

    def _pick_recipe(self, edit: QLineEdit) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Recipe", "", "Recipes (*.yaml *.yml *.json)")
        if path:
            edit.setText(path)

    def _pick_weights(self, edit: QLineEdit) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Checkpoint", "", "Checkpoints (*.pth *.pt *.safetensors)")
        if path:
            edit.setText(path)

    # --- state --------------------------------------------------------------------------------
    @property
    def is_deep(self) -> bool:
        return self.combo.currentData() == REALBASICVSR

    def set_method(self, method: str, preset: str | None = None) -> None:
        """Select ``"realbasicvsr"``, ``"classic"`` with a preset name, ``"recipe"`` or
        ``"builder"``."""
        wanted = {"realbasicvsr": REALBASICVSR, "recipe": RECIPE,
                  "builder": BUILDER}.get(method, (method, preset))
        for i in range(self.combo.count()):
            if self.combo.itemData(i) == wanted:
                self.combo.setCurrentIndex(i)
                return
        raise ValueError(f"unknown method {method!r} / preset {preset!r}")

    def method_options(self) -> MethodOptions:
        """The method and its options as the form sets them (ValueError when incomplete).

        Weights: "file" names the checkpoint; "auto" and "download" leave it to the runner
        (environment, cache, else a download reported as progress).
        """
        kind, preset = self.combo.currentData()
        if kind == "classic-builder":
            if self.builder is None:
                raise ValueError("the pipeline builder is not available in this installation")
            return self.builder.method_options()
        if kind != "realbasicvsr":
            recipe = (self.recipe_edit.text().strip() or None) if kind == "classic-recipe" else None
            if kind == "classic-recipe" and recipe is None:
                raise ValueError("choose a recipe file for the classic method")
            return MethodOptions(method="classic", preset=preset, recipe=recipe)
        weights = None
        if self.weights_combo.currentData() == "file":
            weights = self.weights_edit.text().strip() or None
            if weights is None:
                raise ValueError("choose a checkpoint file, or use the cached weights")
        return MethodOptions(method="realbasicvsr", weights=weights,
                             device=self.device_combo.currentData() or "auto",
                             precision=self.precision_combo.currentText() or "auto")

    def tile(self) -> int | None:
        tile = self.tile_spin.value()
        return None if tile < 0 or not self.is_deep else tile

    @staticmethod
    def label(method: MethodOptions) -> str:
        """The method's part of a store name ("RealBasicVSR x4", "classic:seed")."""
        if method.method == "realbasicvsr":
            return f"{DISPLAY_NAMES['realbasicvsr']} x4"
        what = method.preset or (Path(method.recipe).stem if method.recipe else None)
        if what is None:
            what = (method.pipeline or {}).get("name") or "pipeline"
        return f"classic:{what}"
