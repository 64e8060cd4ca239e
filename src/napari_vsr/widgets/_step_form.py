"""One pipeline step's parameters as a magicgui form, generated from its registry entry.

The operator's signature gives the parameters, their order and defaults; its
:class:`~napari_vsr.classic.registry.Param` records give the widgets and their limits: numbers
become spin boxes bounded by the registry (odd kernel sizes step by 2, an open minimum such as
"> 0" starts one step above it), choices a combo box, switches a check box, pairs two spin boxes,
and a parameter that may be left unset ("null" in a recipe) gets a "set" check box in front of
its value.  Tooltips are the registry's own descriptions and allowed values.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from typing import Any

from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, SpinBox, Widget
from qtpy.QtWidgets import QSizePolicy

from napari_vsr.classic.registry import Operator, Param
from napari_vsr.errors import ParameterError

#: decimals shown by float fields (fractions of full scale such as 0.035 need three)
DECIMALS = 3
_INT_LIMIT = 2**31 - 1
_FLOAT_LIMIT = 1e9

#: what an unset optional parameter shows (and starts from) when the user switches it on
SUGGESTED: dict[tuple[str, str], Any] = {
    ("resize", "factor"): 2.0,
    ("resize", "size"): (720, 1280),
}


def label_of(name: str) -> str:
    """A parameter name as a form label: ``"clip_limit"`` -> ``"clip limit"``."""
    return name.replace("_", " ")


def plain(text: str) -> str:
    """Docstring text for people: reStructuredText literals (````x````) without the quotes."""
    return re.sub(r"``(.+?)``", r"\1", text)


def param_tooltip(spec: Operator, name: str) -> str:
    """``"<description>. Allowed: <values>. Default: <value>."`` for one parameter."""
    param = spec.params[name]
    default = spec.defaults[name]
    shown = "unset" if default is None else _shown(default)
    text = param.description or label_of(name)
    return f"{text[0].upper()}{text[1:]}. Allowed: {param.allowed()}. Default: {shown}."


def _shown(value: Any) -> str:
    if isinstance(value, tuple | list):
        return " x ".join(str(v) for v in value)
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"{value:g}" if isinstance(value, float) else str(value)


def parameter_names(spec: Operator) -> list[str]:
    """The operator's parameters in the order of its signature."""
    names = list(inspect.signature(spec.impl).parameters)
    return [n for n in names if n in spec.params]


def suggested(spec: Operator, name: str) -> Any:
    """A value for an optional parameter that is unset (None) at the moment."""
    if (spec.name, name) in SUGGESTED:
        return SUGGESTED[(spec.name, name)]
    param = spec.params[name]
    low = 1 if param.minimum is None or param.minimum < 1 else param.minimum
    if param.kind == "pair":
        return (int(low), int(low))
    if param.kind == "str":
        return (param.choices or ("",))[0]
    if param.kind == "bool":
        return False
    return int(low) if param.kind == "int" else float(low)


def starting_params(spec: Operator) -> dict[str, Any]:
    """The parameters of a newly added step: the defaults, or (when they are not a valid step
    on their own, e.g. ``resize`` needs a factor or a size) the defaults with the first
    optional parameter that makes them valid switched on."""
    params = dict(spec.defaults)
    try:
        return spec.validate(params)
    except ParameterError:
        pass
    for name in parameter_names(spec):
        if spec.params[name].optional and params[name] is None:
            trial = {**params, name: suggested(spec, name)}
            try:
                return spec.validate(trial)
            except ParameterError:
                continue
    return params


class _Field:
    """One parameter: the widget of its form row and how to read and write its value."""

    def __init__(self, spec: Operator, name: str, value: Any):
        self.name = name
        self.param: Param = spec.params[name]
        tooltip = param_tooltip(spec, name)
        start = suggested(spec, name) if value is None else value
        self.value_widget, self._read, self._write = _value_widget(self.param, name, start)
        self._set_tooltip(self.value_widget, tooltip)
        self.toggle: CheckBox | None = None
        if self.param.optional:
            self.toggle = CheckBox(value=value is not None, text="set", name=f"{name}_set",
                                   tooltip=f"Use {label_of(name)} (off: leave it unset). "
                                           + tooltip)
            self.toggle.native.setSizePolicy(QSizePolicy.Policy.Maximum,
                                             QSizePolicy.Policy.Fixed)  # the value gets the room
            self.value_widget.enabled = value is not None
            self.toggle.changed.connect(self._toggled)
            self.widget: Widget = Container(
                widgets=[self.toggle, self.value_widget], layout="horizontal", labels=False,
                name=name, label=label_of(name), tooltip=tooltip)
            self.widget.margins = (0, 0, 0, 0)
        else:
            self.widget = self.value_widget
        self.widget.label = label_of(name)
        self.widget.tooltip = tooltip

    @staticmethod
    def _set_tooltip(widget: Widget, tooltip: str) -> None:
        widget.tooltip = tooltip
        if isinstance(widget, Container):
            for child in widget:
                child.tooltip = tooltip

    def _toggled(self, on: bool) -> None:
        self.value_widget.enabled = bool(on)

    def value(self) -> Any:
        if self.toggle is not None and not self.toggle.value:
            return None
        return self._read()

    def set_value(self, value: Any) -> None:
        if self.toggle is not None:
            with self.widget.changed.blocked():
                self.toggle.value = value is not None
            self.value_widget.enabled = value is not None
            if value is None:
                return
        self._write(value)


def _value_widget(param: Param, name: str, value: Any
                  ) -> tuple[Widget, Callable[[], Any], Callable[[Any], None]]:
    """The magicgui widget for one value of ``param`` and its reader and writer."""
    if param.kind == "bool":
        w = CheckBox(value=bool(value), text="", name=name)
        return w, lambda: bool(w.value), lambda v: setattr(w, "value", bool(v))
    if param.kind == "str":
        w = _narrow(ComboBox(value=value, choices=list(param.choices or ()), name=name))
        return w, lambda: w.value, lambda v: setattr(w, "value", v)
    if param.kind == "pair":
        first, second = (_number(param, f"{name}_{i}", v) for i, v in enumerate(value))
        row = Container(widgets=[first, second], layout="horizontal", labels=False, name=name)
        row.margins = (0, 0, 0, 0)

        def write(v: Any) -> None:
            first.value, second.value = int(v[0]), int(v[1])

        return row, lambda: (int(first.value), int(second.value)), write
    w = _number(param, name, value)
    cast = int if param.kind == "int" else float
    return w, lambda: cast(w.value), lambda v: setattr(w, "value", cast(v))


def _narrow(widget: Widget, minimum: int = 56) -> Widget:
    """Let a spin or combo box shrink with a narrow dock instead of pushing the form wider
    than the panel (its size hint counts napari's wide +/- buttons)."""
    widget.native.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
    widget.native.setMinimumWidth(minimum)
    return widget


def _number(param: Param, name: str, value: Any) -> Widget:
    """A spin box bounded like ``param`` (one element of a pair for ``"pair"``)."""
    if param.kind in ("int", "pair"):
        low = -_INT_LIMIT if param.minimum is None else int(param.minimum)
        if param.open_minimum and param.minimum is not None:
            low += 1
        high = _INT_LIMIT if param.maximum is None else int(param.maximum)
        step = 2 if param.odd else 1
        w = SpinBox(value=int(value), min=low, max=high, step=step, name=name)
        w.native.setKeyboardTracking(False)  # typing "15" is one edit, not "1" then "15"
        return _narrow(w)
    unit = 10.0**-DECIMALS
    low = -_FLOAT_LIMIT if param.minimum is None else float(param.minimum)
    if param.open_minimum and param.minimum is not None:
        low += unit
    high = _FLOAT_LIMIT if param.maximum is None else float(param.maximum)
    span = high - max(low, 0.0)
    step = 0.005 if span <= 1 else 0.1 if span <= 100 else 1.0
    w = FloatSpinBox(value=float(value), min=low, max=high, step=step, name=name)
    w.native.setDecimals(DECIMALS)
    w.native.setKeyboardTracking(False)
    w.value = float(value)  # again: the decimals may have rounded the first one
    return _narrow(w)


class StepForm:
    """The form of one step: a magicgui :class:`Container` with a row per parameter.

    Parameters
    ----------
    spec : Operator
        The step's operator.
    params : mapping
        Its current parameters (every parameter; ``None`` for an unset optional one).

    Attributes
    ----------
    container : magicgui.widgets.Container
        Embed ``container.native``; ``container.changed`` fires on every edit.
    """

    def __init__(self, spec: Operator, params: Mapping[str, Any]):
        self.spec = spec
        self.fields = {name: _Field(spec, name, params.get(name, spec.defaults[name]))
                       for name in parameter_names(spec)}
        self.container = Container(widgets=[f.widget for f in self.fields.values()],
                                   labels=True, name=f"{spec.name}_parameters")
        self.container.margins = (0, 0, 0, 0)
        # napari's theme gives every spin box 90 px at least: a pair would not fit a narrow dock
        self.container.native.setStyleSheet("QAbstractSpinBox { min-width: 30px; }")
        if not self.fields:
            self.container.tooltip = f"{spec.name} has no parameters"

    @property
    def native(self):
        return self.container.native

    def values(self) -> dict[str, Any]:
        """The parameters as the form shows them (not validated)."""
        return {name: field.value() for name, field in self.fields.items()}

    def set_values(self, params: Mapping[str, Any]) -> None:
        """Show ``params`` (without emitting ``changed``)."""
        with self.container.changed.blocked():
            for name, value in params.items():
                if name in self.fields:
                    self.fields[name].set_value(value)

    def __getitem__(self, name: str) -> Widget:
        """The value widget of parameter ``name`` (a spin box, combo box, check box, or the
        row of two spin boxes of a pair)."""
        return self.fields[name].value_widget

    def toggle(self, name: str) -> CheckBox | None:
        """The "set" check box of an optional parameter, else None."""
        return self.fields[name].toggle
