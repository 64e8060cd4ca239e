"""The result-store panel: where the Enhance widget's results live on disk, how much space they
take, and removing them (one by one, with their layer, or a clean-up).

A plain QWidget with a vertical layout (the Enhance widget embeds it as a foldable section);
the work is done by the Qt-free :mod:`napari_vsr.jobs.stores`.  Layers are matched to stores
by their ``metadata["store_path"]``, never by identity (napari hands plugins proxied layers).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from napari_vsr.errors import VsrError
from napari_vsr.jobs.results import default_store_dir
from napari_vsr.jobs.stores import (
    StoreInfo,
    clean_up,
    clean_up_candidates,
    describe_age,
    human_size,
    job_is_running,
    list_stores,
    remove_store,
    total_size,
)
from napari_vsr.widgets._parts import StatusLine, breakable

log = logging.getLogger(__name__)

_PATH_ROLE = Qt.ItemDataRole.UserRole


def _real(path: str | os.PathLike) -> str:
    return os.path.realpath(os.fspath(path).rstrip("/\\"))


def _wrapping_label(text: str = "") -> QLabel:
    """A word-wrapped label that never widens its dock (its width hint is ignored)."""
    label = QLabel(text)
    label.setWordWrap(True)
    label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Minimum)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


class StoresPanel(QWidget):
    """The result stores of a folder, with Open, Delete and Clean up.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer (or napari's proxy of it) whose layers may be backed by the stores.
    folder : path-like, optional
        The managed folder; default :func:`napari_vsr.jobs.results.default_store_dir` (where
        the Enhance widget writes).
    parent : QWidget, optional

    Notes
    -----
    When "keep stores of deleted layers" is unchecked (the default), removing
    a result layer whose store lies in the managed folder deletes the store and its job state
    folder, unless a running job writes it (:meth:`set_busy_paths`, or a job lock held by any
    process) or another layer still shows it.  Stores elsewhere (a CLI ``-o x.zarr``) are
    never deleted with their layer.

    Creating the panel also makes napari's File > Open read the managed folder's stores with
    this plugin's reader (:func:`napari_vsr._reader.prefer_for_result_stores`).
    """

    def __init__(self, viewer, *, folder: str | os.PathLike | None = None, parent=None):
        super().__init__(parent)
        self.viewer = viewer
        self.folder = Path(default_store_dir() if folder is None else folder)
        self._busy: Callable[[], Iterable[str | os.PathLike]] = lambda: ()
        self._stores: list[StoreInfo] = []

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        self.location_label = _wrapping_label()
        self.location_label.setToolTip(
            "The folder where enhancement results are kept while you work (one .zarr store "
            "per result), and the space they take")
        layout.addWidget(self.location_label)

        self.store_list = QListWidget()
        self.store_list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.store_list.setMaximumHeight(96)
        self.store_list.setMinimumHeight(48)
        self.store_list.setUniformItemSizes(True)
        self.store_list.setToolTip(
            "Saved results, newest first: name, size, and whether the run was unfinished. "
            "Double-click to open one as a layer")
        self.store_list.itemDoubleClicked.connect(lambda _item: self.open_selected())
        self.store_list.itemSelectionChanged.connect(self._update_buttons)
        layout.addWidget(self.store_list)

        row = QHBoxLayout()
        row.setSpacing(4)
        self.open_button = QPushButton("Open")
        self.open_button.setToolTip("Open the selected results as layers, placed over their "
                                    "source")
        self.open_button.clicked.connect(self.open_selected)
        self.delete_button = QPushButton("Delete")
        self.delete_button.setToolTip(
            "Delete the selected results from disk (their layers are closed first); asks before")
        self.delete_button.clicked.connect(self.delete_selected)
        self.cleanup_button = QPushButton("Clean up…")
        self.cleanup_button.setToolTip(
            "Delete every result that no layer shows and no running job writes; asks first, "
            "showing how many and how much space")
        self.cleanup_button.clicked.connect(self.clean_up)
        for button in (self.open_button, self.delete_button, self.cleanup_button):
            row.addWidget(button)
        layout.addLayout(row)

        self.keep_check = QCheckBox("keep stores of deleted layers")
        self.keep_check.setChecked(False)
        self.keep_check.setToolTip(
            "Unchecked: deleting a result layer also deletes its store in this folder, so "
            "results do not pile up. Checked: stores stay until you delete or clean them up")
        layout.addWidget(self.keep_check)

        self.status_label = StatusLine()
        layout.addWidget(self.status_label)
        layout.addStretch(1)  # docked alone, spare height goes below, not between rows

        self._removed: list[tuple[str, str]] = []
        self.viewer.layers.events.removed.connect(self._on_layer_removed)
        self.viewer.layers.events.inserted.connect(self._on_layers_changed)
        from napari_vsr._reader import prefer_for_result_stores

        prefer_for_result_stores(self.folder)
        self.refresh()

    # --- wiring for the Enhance widget ------------------------------------------------------
    def set_busy_paths(self, busy: Callable[[], Iterable[str | os.PathLike]]) -> None:
        """Tell the panel how to ask which stores running jobs write now.

        Parameters
        ----------
        busy : callable
            Called with no argument whenever the panel is about to delete something; returns
            the store paths (``JobStarted.output``) of the running jobs.  Those stores are
            never deleted: not with their layer, not by Delete or Clean up.
        """
        self._busy = busy

    def set_folder(self, folder: str | os.PathLike) -> None:
        """Manage another folder (the Enhance widget's store folder changed): list its stores,
        delete only its stores with their layers, and open its stores with our reader."""
        from napari_vsr._reader import prefer_for_result_stores

        self.folder = Path(folder)
        prefer_for_result_stores(self.folder)
        self.refresh()

    @property
    def keep_stores(self) -> bool:
        """Whether stores stay on disk when their layer is deleted."""
        return self.keep_check.isChecked()

    def busy_paths(self) -> set[str]:
        """Real paths of the stores running jobs write (see :meth:`set_busy_paths`)."""
        try:
            return {_real(p) for p in self._busy() or () if p}
        except Exception:  # the callback is the caller's; never let it break a deletion check
            log.warning("the busy-stores callback failed", exc_info=True)
            return set()

    def layer_paths(self) -> set[str]:
        """Real paths of the stores behind the viewer's layers."""
        paths = set()
        for layer in self.viewer.layers:
            path = (getattr(layer, "metadata", None) or {}).get("store_path")
            if path:
                paths.add(_real(path))
        return paths

    def in_use(self) -> set[str]:
        return self.layer_paths() | self.busy_paths()

    # --- the list ---------------------------------------------------------------------------
    def refresh(self) -> None:
        """Read the folder again and show its stores and their total size."""
        self._stores = list_stores(self.folder)
        shown = self.layer_paths()
        selected = {item.data(_PATH_ROLE) for item in self.store_list.selectedItems()}
        self.store_list.clear()
        for info in self._stores:
            flags = []
            if info.partial:
                flags.append("partial")
            if _real(info.path) in shown:
                flags.append("open")
            suffix = f"  ({', '.join(flags)})" if flags else ""
            item = QListWidgetItem(f"{info.name} — {human_size(info.size_bytes)}, "
                                   f"{describe_age(info.mtime, short=True)}{suffix}")
            item.setData(_PATH_ROLE, os.fspath(info.path))
            item.setToolTip(
                f"{info.path}\nsource: {info.source_name or '?'}\nmethod: {info.method or '?'}"
                f"\n{info.frames} frame{'s' if info.frames != 1 else ''}"
                f"{', unfinished' if info.partial else ''}\nlast changed {describe_age(info.mtime)}")
            self.store_list.addItem(item)
            if os.fspath(info.path) in selected:
                item.setSelected(True)
        count = len(self._stores)
        self.location_label.setText(
            f"{count} result{'s' if count != 1 else ''}, "
            f"{human_size(total_size(self._stores))} in {breakable(os.fspath(self.folder))}")
        self._update_buttons()

    def stores(self) -> list[StoreInfo]:
        """The stores listed now."""
        return list(self._stores)

    def select(self, paths: Iterable[str | os.PathLike]) -> None:
        """Select the rows of these store paths (others unselected)."""
        wanted = {_real(p) for p in paths}
        for i in range(self.store_list.count()):
            item = self.store_list.item(i)
            item.setSelected(_real(item.data(_PATH_ROLE)) in wanted)

    def selected_paths(self) -> list[Path]:
        return [Path(item.data(_PATH_ROLE)) for item in self.store_list.selectedItems()]

    def _update_buttons(self) -> None:
        any_selected = bool(self.store_list.selectedItems())
        self.open_button.setEnabled(any_selected)
        self.delete_button.setEnabled(any_selected)
        self.cleanup_button.setEnabled(bool(self._stores))

    def _say(self, text: str) -> None:
        self.status_label.show_message(text)

    def _ask(self, title: str, text: str) -> bool:
        answer = QMessageBox.question(
            self, title, text,
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    # --- actions ----------------------------------------------------------------------------
    def open_selected(self) -> list:
        """Open the selected stores as layers (an open one is selected instead).

        Returns the layers opened or selected.
        """
        layers = []
        for path in self.selected_paths():
            existing = self._layers_of(path)
            if existing:
                self.viewer.layers.selection.active = existing[0]
                layers.append(existing[0])
                continue
            try:
                layers.extend(self.viewer.open(os.fspath(path), plugin="napari-vsr"))
            except Exception as exc:  # napari wraps reader errors in its own types
                self._say(f"could not open {path.name}: {exc}")
                return layers
        if layers:
            self._say(f"opened {len(layers)} result{'s' if len(layers) != 1 else ''}")
        self.refresh()
        return layers

    def _layers_of(self, path: str | os.PathLike) -> list:
        real = _real(path)
        return [layer for layer in self.viewer.layers
                if (getattr(layer, "metadata", None) or {}).get("store_path")
                and _real(layer.metadata["store_path"]) == real]

    def delete_selected(self, *, ask: bool = True) -> list[StoreInfo]:
        """Delete the selected stores (and their job folders) after asking; their layers are
        removed from the viewer first.  Stores running jobs write are refused."""
        chosen = [s for s in self._stores if os.fspath(s.path) in
                  {os.fspath(p) for p in self.selected_paths()}]
        if not chosen:
            return []
        busy = self.busy_paths()
        running = [s for s in chosen if _real(s.path) in busy or job_is_running(s.job_dir)]
        if running:
            self._say(f"not deleted: a running job writes {running[0].name}; cancel it first")
            return []
        size = human_size(total_size(chosen))
        names = "\n".join(f"• {s.name} ({human_size(s.size_bytes)})" for s in chosen[:8])
        more = f"\n… and {len(chosen) - 8} more" if len(chosen) > 8 else ""
        open_layers = [layer for s in chosen for layer in self._layers_of(s.path)]
        closing = (f"\n\n{len(open_layers)} layer{'s' if len(open_layers) != 1 else ''} "
                   "showing them will be closed.") if open_layers else ""
        if ask and not self._ask(
                "Delete results",
                f"Delete {len(chosen)} result{'s' if len(chosen) != 1 else ''} ({size}) from "
                f"disk?\n\n{names}{more}{closing}"):
            return []
        for layer in open_layers:
            if layer in self.viewer.layers:
                self.viewer.layers.remove(layer)
        removed, errors = [], []
        for info in chosen:
            if not info.path.exists():  # already gone with its layer
                removed.append(info)
                continue
            try:
                removed.append(remove_store(info.path))
            except VsrError as exc:
                errors.append(str(exc))
        text = (f"deleted {len(removed)} result{'s' if len(removed) != 1 else ''}, "
                f"freed {human_size(total_size(removed))}")
        self._say(text + (f"; {errors[0]}" if errors else ""))
        self.refresh()
        return removed

    def clean_up(self, *, ask: bool = True, partial_only: bool = False,
                 older_than_days: float | None = None) -> list[StoreInfo]:
        """Delete the stores no layer shows and no running job writes, after asking (count and
        size).  Returns what was removed."""
        candidates = clean_up_candidates(self.folder, self.in_use(), partial_only=partial_only,
                                         older_than_days=older_than_days)
        if not candidates:
            self._say("nothing to clean up: every result here is open or running")
            self.refresh()
            return []
        size = human_size(total_size(candidates))
        kept = len(self._stores) - len(candidates)
        if ask and not self._ask(
                "Clean up results",
                f"Delete {len(candidates)} result{'s' if len(candidates) != 1 else ''} ({size}) "
                f"that no layer shows?\n\n{breakable(os.fspath(self.folder))}\n\n"
                f"Results shown as layers or written by a running job are kept"
                f"{f' ({kept})' if kept > 0 else ''}."):
            return []
        result = clean_up(self.folder, self.in_use(), partial_only=partial_only,
                          older_than_days=older_than_days)
        text = (f"cleaned up {len(result.removed)} result"
                f"{'s' if len(result.removed) != 1 else ''}, freed {human_size(result.freed_bytes)}")
        if result.failed:
            text += f"; {len(result.failed)} not removed: {result.failed[0][1]}"
        self._say(text)
        self.refresh()
        return result.removed

    # --- layers deleted ---------------------------------------------------------------------
    def _on_layers_changed(self, event=None) -> None:
        self.refresh()

    def _on_layer_removed(self, event) -> None:
        """Remember the store of a removed result layer; it is deleted once the removal is
        over (see :meth:`_flush_removed`)."""
        layer = getattr(event, "value", None)
        path = (getattr(layer, "metadata", None) or {}).get("store_path")
        if path and not self.keep_stores:
            if not self._removed:
                QTimer.singleShot(0, self._flush_removed)
            self._removed.append((path, getattr(layer, "name", "")))

    def _flush_removed(self) -> None:
        """Delete the stores of the layers removed since the last turn of the event loop,
        unless the viewer is now empty: napari's ``Viewer.close`` (and Layers > clear) removes
        every layer, and closing the window must not delete results."""
        removed, self._removed = self._removed, []
        try:
            if len(self.viewer.layers) == 0:
                return
            for path, name in removed:
                self.remove_store_of_layer(path, name)
            self.refresh()
        except RuntimeError:  # this panel or the viewer's Qt side is gone: it closed
            return

    def remove_store_of_layer(self, path: str | os.PathLike, name: str = "") -> StoreInfo | None:
        """Delete the store of a deleted layer, when it lies in the managed folder, no other
        layer shows it and no job writes it.  Returns what was removed, or None."""
        real = _real(path)
        if Path(real).parent != Path(_real(self.folder)) or not Path(real).exists():
            return None
        if real in self.layer_paths():
            return None
        if real in self.busy_paths():
            self._say(f"kept the store of {name or Path(real).name}: its job is running")
            return None
        try:
            info = remove_store(real)
        except VsrError as exc:  # not a result store, or its job runs in some process
            self._say(f"kept {Path(real).name}: {exc}")
            return None
        self._say(f"deleted the store of {name or info.name} ({human_size(info.size_bytes)})")
        return info
