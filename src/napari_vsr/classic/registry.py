"""The operator registry: one description of each operator's parameters, used everywhere.

Each public operator is declared with :func:`operator`, which records its parameter ranges in
:data:`OPERATORS` and wraps the function so that direct calls, pipelines, recipe files and the
CLI all validate parameters the same way and share the dtype/layout policy of
:mod:`napari_vsr.classic.dtypes`.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from napari_vsr.classic.dtypes import (
    SUPPORTED_DTYPES,
    check_dtype,
    restore_layout,
    to_channels_last,
)
from napari_vsr.errors import ParameterError

ParamKind = Literal["int", "float", "str", "bool", "pair"]


@dataclass(frozen=True)
class Param:
    """Allowed values of one operator parameter.

    Attributes
    ----------
    kind : {"int", "float", "str", "bool", "pair"}
        ``"pair"`` is two integers, e.g. ``(rows, cols)``.
    minimum, maximum : float, optional
        Inclusive bounds (for ``"pair"``: of each element).
    open_minimum : bool
        Whether ``minimum`` itself is excluded (``> 0`` rather than ``>= 0``).
    odd : bool
        Integers must be odd (kernel sizes).
    choices : tuple of str, optional
        Allowed strings.
    optional : bool
        Whether ``None`` is allowed.
    description : str
        One line for ``napari-vsr recipes ops``.
    """

    kind: ParamKind
    minimum: float | None = None
    maximum: float | None = None
    open_minimum: bool = False
    odd: bool = False
    choices: tuple[str, ...] | None = None
    optional: bool = False
    description: str = ""

    def allowed(self) -> str:
        """Human description of the allowed values, used in error messages."""
        if self.kind == "str":
            text = "one of " + ", ".join(repr(c) for c in self.choices or ())
        elif self.kind == "bool":
            text = "true or false"
        else:
            noun = {"int": "an integer", "float": "a number", "pair": "two integers"}[self.kind]
            if self.odd:
                noun = "an odd integer"
            lo = "-inf" if self.minimum is None else _fmt(self.minimum)
            hi = "inf" if self.maximum is None else _fmt(self.maximum)
            bracket = "(" if self.open_minimum else "["
            text = f"{noun} in {bracket}{lo}, {hi}]"
        return text + (" or null" if self.optional else "")

    def check(self, value: Any, *, where: str, name: str) -> Any:
        """Return ``value`` normalised (int, float, str, bool or tuple) or raise ParameterError."""
        if value is None:
            if self.optional:
                return None
            self._fail(value, where, name)
        if self.kind == "bool":
            if not isinstance(value, bool | np.bool_):
                self._fail(value, where, name)
            return bool(value)
        if self.kind == "str":
            if not isinstance(value, str) or value not in (self.choices or ()):
                self._fail(value, where, name)
            return value
        if self.kind == "pair":
            if isinstance(value, str) or not isinstance(value, Sequence) or len(value) != 2:
                self._fail(value, where, name)
            return tuple(self._number(v, value, where, name, as_int=True) for v in value)
        return self._number(value, value, where, name, as_int=self.kind == "int")

    def _number(self, v: Any, shown: Any, where: str, name: str, *, as_int: bool) -> Any:
        if isinstance(v, bool | np.bool_) or not isinstance(
            v, int | float | np.integer | np.floating
        ):
            self._fail(shown, where, name)
        if not math.isfinite(float(v)):
            self._fail(shown, where, name)
        if as_int:
            if float(v) != int(v):
                self._fail(shown, where, name)
            v = int(v)
            if self.odd and v % 2 == 0:
                self._fail(shown, where, name)
        else:
            v = float(v)
        if self.minimum is not None and (
            v < self.minimum or (self.open_minimum and v == self.minimum)
        ):
            self._fail(shown, where, name)
        if self.maximum is not None and v > self.maximum:
            self._fail(shown, where, name)
        return v

    def _fail(self, value: Any, where: str, name: str) -> None:
        raise ParameterError(
            f"{where}: parameter '{name}' = {value!r} is invalid; expected {self.allowed()}"
        )


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


@dataclass(frozen=True)
class Operator:
    """A registered operator.

    Attributes
    ----------
    name : str
        The name used in recipes (equal to the function name).
    func : callable
        The public function (validates, handles dtype and layout).
    impl : callable
        The undecorated function: channels-last input, validated parameters.
    params : dict of str to Param
    defaults : dict of str to value
    temporal : bool
        Whether it works on a stack ``(T, H, W[, C])`` rather than one frame.
    summary : str
        First line of the docstring.
    """

    name: str
    func: Callable[..., np.ndarray]
    impl: Callable[..., np.ndarray]
    params: dict[str, Param]
    defaults: dict[str, Any]
    temporal: bool
    summary: str
    constraint: Callable[[dict[str, Any]], str | None] | None = field(default=None, repr=False)
    scale_of: Callable[[dict[str, Any]], float | None] | None = field(default=None, repr=False)
    context_of: Callable[[dict[str, Any]], int] | None = field(default=None, repr=False)
    into: Callable[..., None] | None = field(default=None, repr=False)

    def validate(self, params: Mapping[str, Any], *, where: str | None = None) -> dict[str, Any]:
        """Check ``params`` and fill defaults.

        Raises
        ------
        ParameterError
            Naming ``where`` (e.g. ``"step 2 (gaussian_blur)"``), the parameter and the
            allowed values.
        """
        where = where or self.name
        unknown = sorted(set(params) - set(self.params))
        if unknown:
            raise ParameterError(
                f"{where}: unknown parameter(s) {', '.join(map(repr, unknown))}; "
                f"{self.name} takes {', '.join(self.params) or 'no parameters'}"
            )
        out = dict(self.defaults)
        for name, value in params.items():
            out[name] = self.params[name].check(value, where=where, name=name)
        if self.constraint is not None:
            message = self.constraint(out)
            if message:
                raise ParameterError(f"{where}: {message}")
        return out

    def run(self, image: np.ndarray, params: Mapping[str, Any]) -> np.ndarray:
        """Apply to a channels-last frame (or stack) with already validated ``params``.

        A single trailing channel, ``(H, W, 1)``, is processed as gray and kept (OpenCV
        would drop it).
        """
        check_dtype(image, self.name)
        base = 3 if self.temporal else 2
        if image.ndim == base + 1 and image.shape[-1] == 1:
            return self.impl(image[..., 0], **params)[..., np.newaxis]
        return self.impl(image, **params)

    def run_into(self, image: np.ndarray, out: np.ndarray, params: Mapping[str, Any]) -> None:
        """Like :meth:`run` but writes into ``out`` (the right shape and dtype), directly where
        the operator supports it (saves a copy of large resize outputs)."""
        if (
            self.into is not None
            and image.dtype in SUPPORTED_DTYPES
            and out.flags.c_contiguous
            and not (image.ndim == out.ndim == (4 if self.temporal else 3) and out.shape[-1] == 1)
        ):
            self.into(image, out, **params)
        else:
            out[...] = self.run(image, params)

    def scale(self, params: Mapping[str, Any]) -> float | None:
        """Spatial scale of this step (``None`` when it depends on the input size)."""
        return 1.0 if self.scale_of is None else self.scale_of(dict(params))

    def context(self, params: Mapping[str, Any]) -> int:
        """Frames of temporal context needed on each side."""
        return 0 if self.context_of is None else self.context_of(dict(params))


#: every registered operator by name, in registration order
OPERATORS: dict[str, Operator] = {}


def operator(
    params: Mapping[str, Param],
    *,
    temporal: bool = False,
    constraint: Callable[[dict[str, Any]], str | None] | None = None,
    scale_of: Callable[[dict[str, Any]], float | None] | None = None,
    context_of: Callable[[dict[str, Any]], int] | None = None,
    into: Callable[..., None] | None = None,
) -> Callable[[Callable[..., np.ndarray]], Callable[..., np.ndarray]]:
    """Register an operator ``f(image, <params>, *, channel_axis=None)``.

    The decorated function is written for a channels-last input of a supported dtype with
    validated parameters; the returned wrapper adds validation, the dtype check and the
    ``channel_axis`` handling.  ``into(image, out, <params>)``, if given, computes the same
    result directly into a C-contiguous ``out``.
    """

    def decorate(impl: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
        name = impl.__name__
        signature = inspect.signature(impl)
        names = [p for p in signature.parameters if p not in ("image", "stack", "channel_axis")]
        if set(names) != set(params):
            raise TypeError(f"{name}: declared parameters {sorted(params)} != {sorted(names)}")
        defaults = {p: signature.parameters[p].default for p in names}

        @functools.wraps(impl)
        def wrapper(image: np.ndarray, *args: Any, channel_axis: int | None = None, **kwargs: Any):
            bound = signature.bind(image, *args, **kwargs)
            given = {k: v for k, v in bound.arguments.items() if k in params}
            values = spec.validate(given)
            image = np.asarray(image)
            check_dtype(image, name)
            arr, moved = to_channels_last(image, name, channel_axis, temporal=temporal)
            return restore_layout(spec.run(arr, values), moved)

        doc = inspect.getdoc(impl) or ""
        spec = Operator(
            name=name,
            func=wrapper,
            impl=impl,
            params=dict(params),
            defaults=defaults,
            temporal=temporal,
            summary=doc.splitlines()[0] if doc else name,
            constraint=constraint,
            scale_of=scale_of,
            context_of=context_of,
            into=into,
        )
        OPERATORS[name] = spec
        return wrapper

    return decorate


def get_operator(name: str, *, where: str | None = None) -> Operator:
    """Look up an operator by name; ``ParameterError`` lists the known names."""
    try:
        return OPERATORS[name]
    except (KeyError, TypeError):
        known = ", ".join(OPERATORS)
        raise ParameterError(
            f"{where + ': ' if where else ''}unknown operator {name!r}; known operators: {known}"
        ) from None
