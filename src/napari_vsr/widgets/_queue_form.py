"""The "Add jobs" part of the Job queue widget: the method (the Enhance widget's method panel),
the result (a layer, or a file beside the source in a chosen format) and where jobs run (this
computer or a Dask cluster).  The queue reads the choices; this part only gathers them."""

from __future__ import annotations

import os

from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QMenu,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from napari_vsr.widgets._method_panel import MethodPanel

#: output choices: a result store shown as a layer, or a file beside the source
OUTPUT_STORE = "store"
OUTPUT_FILE = "file"
#: file formats offered for an output beside the source
FILE_FORMATS = (".mp4", ".mkv", ".tif")
#: "Run on" choices
RUN_HERE, RUN_LOCAL, RUN_ADDRESS = "here", "local", "address"
#: file-dialog filter of the sources a job reads
SOURCE_FILTER = ("Videos and TIFF stacks (*.mp4 *.m4v *.mov *.avi *.mkv *.webm *.gif *.ts *.mts "
                 "*.m2ts *.mpg *.mpeg *.y4m *.tif *.tiff);;All files (*)")


class AddJobsForm(QWidget):
    """Method, result and "Run on" choices for new queue entries, with the Add layer and
    Add files… buttons.

    Signals
    -------
    add_layer_clicked()
    files_chosen(list)
        Paths picked in the file dialog (files, or one folder of frames).
    """

    add_layer_clicked = Signal()
    files_chosen = Signal(list)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.method_panel = MethodPanel()
        lay.addWidget(self.method_panel)

        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.output_combo = QComboBox()
        self.output_combo.addItem("a result layer", OUTPUT_STORE)
        self.output_combo.addItem("a file beside the source", OUTPUT_FILE)
        self.output_combo.setToolTip(
            "a result layer: an on-disk store opened over the source when the job ends (and "
            "filled while it runs); a file: a video or TIFF stack written next to the source "
            "file")
        self.output_combo.currentIndexChanged.connect(self._output_changed)
        form.addRow("Result", self.output_combo)
        file_row = QWidget()
        fl = QHBoxLayout(file_row)
        fl.setContentsMargins(0, 0, 0, 0)
        self.suffix_edit = QLineEdit("_enhanced")
        self.suffix_edit.setToolTip("added to the source's name: clip.mp4 → clip_enhanced.mp4")
        self.format_combo = QComboBox()
        self.format_combo.addItems(FILE_FORMATS)
        self.format_combo.setToolTip(".mp4: H.264 video; .mkv: video in a Matroska file; "
                                     ".tif: a TIFF stack (exact values, large)")
        fl.addWidget(self.suffix_edit, 1)
        fl.addWidget(self.format_combo)
        form.addRow("Name", file_row)
        self._file_label = form.labelForField(file_row)
        self._file_row = file_row

        self.run_on_combo = QComboBox()
        self.run_on_combo.addItem("this computer", RUN_HERE)
        self.run_on_combo.addItem("Dask: a local cluster", RUN_LOCAL)
        self.run_on_combo.addItem("Dask: a scheduler…", RUN_ADDRESS)
        self.run_on_combo.setToolTip(
            "where a file's job runs: here, or its segments as tasks of a Dask cluster (a "
            "cluster of worker processes started on this computer, or a running scheduler). "
            "A layer's job always runs here: the workers cannot read its frames")
        self.run_on_combo.currentIndexChanged.connect(self._run_on_changed)
        run_row = QWidget()
        rl = QHBoxLayout(run_row)
        rl.setContentsMargins(0, 0, 0, 0)
        self.workers_spin = QSpinBox()
        self.workers_spin.setRange(1, max(1, os.cpu_count() or 1))
        self.workers_spin.setValue(min(2, self.workers_spin.maximum()))
        self.workers_spin.setSuffix(" workers")
        self.workers_spin.setToolTip("worker processes of the local Dask cluster")
        self.address_edit = QLineEdit()
        self.address_edit.setPlaceholderText("tcp://host:8786")
        self.address_edit.setToolTip("the address of a running Dask scheduler whose workers "
                                     "can read the source files and the output folder")
        rl.addWidget(self.run_on_combo, 1)
        rl.addWidget(self.workers_spin)
        rl.addWidget(self.address_edit, 1)
        form.addRow("Run on", run_row)
        lay.addLayout(form)

        row = QHBoxLayout()
        self.add_layer_button = self._button(
            "Add layer", "queue the selected image layer with this method")
        self.add_layer_button.clicked.connect(self.add_layer_clicked)
        self.add_files_button = QToolButton()
        self.add_files_button.setText("Add files…")
        self.add_files_button.setToolTip(
            "queue video or TIFF files with this method (the arrow: a folder of frames)")
        self.add_files_button.setPopupMode(QToolButton.ToolButtonPopupMode.MenuButtonPopup)
        self.add_files_button.setSizePolicy(QSizePolicy.Policy.Expanding,
                                            QSizePolicy.Policy.Fixed)
        menu = QMenu(self.add_files_button)
        menu.setToolTipsVisible(True)
        files = menu.addAction("Videos or TIFF stacks…")
        files.setToolTip("choose one or more files")
        files.triggered.connect(self._pick_files)
        folder = menu.addAction("A folder of frames…")
        folder.setToolTip("a folder of numbered images is one clip")
        folder.triggered.connect(self._pick_folder)
        self.add_files_button.setMenu(menu)
        self.add_files_button.clicked.connect(self._pick_files)
        row.addWidget(self.add_layer_button)
        row.addWidget(self.add_files_button)
        lay.addLayout(row)
        self._output_changed()
        self._run_on_changed()

    def _output_changed(self, index=None) -> None:
        is_file = self.output_combo.currentData() == OUTPUT_FILE
        self._file_row.setVisible(is_file)
        if self._file_label is not None:
            self._file_label.setVisible(is_file)

    def _run_on_changed(self, index=None) -> None:
        kind = self.run_on_combo.currentData()
        self.workers_spin.setVisible(kind == RUN_LOCAL)
        self.address_edit.setVisible(kind == RUN_ADDRESS)

    def _pick_files(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Queue videos or TIFF stacks", "",
                                                SOURCE_FILTER)
        if paths:
            self.files_chosen.emit(list(paths))

    def _pick_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Queue a folder of frames")
        if path:
            self.files_chosen.emit([path])

    def scheduler(self) -> str | None:
        """The "Run on" choice as a job's scheduler: None (here), "local:N" or an address."""
        kind = self.run_on_combo.currentData()
        if kind == RUN_LOCAL:
            return f"local:{self.workers_spin.value()}"
        if kind == RUN_ADDRESS:
            address = self.address_edit.text().strip()
            if not address:
                raise ValueError("type the address of the Dask scheduler (tcp://host:8786), "
                                 "or run on this computer")
            return address if "://" in address else f"tcp://{address}"
        return None

    def set_run_on(self, scheduler: str | None) -> None:
        """Choose where new jobs run: None, "local:N" or a scheduler address."""
        if not scheduler:
            self.run_on_combo.setCurrentIndex(self.run_on_combo.findData(RUN_HERE))
        elif scheduler.startswith("local"):
            _, _, n = scheduler.partition(":")
            self.run_on_combo.setCurrentIndex(self.run_on_combo.findData(RUN_LOCAL))
            if n:
                self.workers_spin.setValue(int(n))
        else:
            self.run_on_combo.setCurrentIndex(self.run_on_combo.findData(RUN_ADDRESS))
            self.address_edit.setText(scheduler)

    def set_output(self, kind: str, fmt: str = ".mp4", suffix: str | None = None) -> None:
        """Choose the result of new jobs: :data:`OUTPUT_STORE` or :data:`OUTPUT_FILE` in
        ``fmt`` (one of :data:`FILE_FORMATS`) with ``suffix``."""
        self.output_combo.setCurrentIndex(self.output_combo.findData(kind))
        self.format_combo.setCurrentText(fmt)
        if suffix is not None:
            self.suffix_edit.setText(suffix)

    # --- the choices ------------------------------------------------------------------------
    @property
    def wants_file(self) -> bool:
        """A file beside the source (else a result layer)."""
        return self.output_combo.currentData() == OUTPUT_FILE

    def suffix(self) -> str:
        return self.suffix_edit.text().strip()

    def file_format(self) -> str:
        return self.format_combo.currentText()

    def _button(self, text: str, tip: str) -> QPushButton:
        button = QPushButton(text)
        button.setToolTip(tip)
        button.setMinimumWidth(10)
        return button
