"""The one frame-rate parser of the project.

Every front end and every sink reads a frame rate through :func:`parse_fps` (a user's ``--fps``,
a writer's ``fps=``) or :func:`fps_of_metadata` (the ``fps_fraction``/``fps`` a reader recorded),
so ``29.97`` means ``30000/1001`` everywhere.  No PyAV, no NumPy: importing this is cheap.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

from napari_vsr.errors import ParameterError

log = logging.getLogger(__name__)

#: how close (in frames per second) a decimal rate must be to ``k * 1000/1001`` to mean it
NTSC_TOLERANCE = 0.002


def parse_fps(value: float | int | str | Fraction, *, option: str = "fps") -> Fraction:
    """An exact, positive frame rate.

    Parameters
    ----------
    value : float, int, Fraction or str
        ``25``, ``"25"``, ``29.97``, ``"29.97"``, ``"30000/1001"``, ``Fraction(30000, 1001)``,
        or a measured rate such as ``29.97002997``.
    option : str
        The name of the option or parameter the value came from, for the error message
        (``"--fps"`` for the CLI).

    Returns
    -------
    Fraction
        A decimal (float, int, Fraction or decimal string) within :data:`NTSC_TOLERANCE` of
        ``k * 1000 / 1001`` becomes that NTSC rate (29.97 -> 30000/1001, 23.976 -> 24000/1001,
        59.94 -> 60000/1001); other values are kept exactly (12.5 -> 25/2), limited to a
        denominator of 1 000 000.  An explicit ``"num/den"`` string is kept as written.

    Raises
    ------
    ParameterError
        Not a positive finite number; the message names ``option`` and the value.
    """
    try:
        if isinstance(value, bool):
            raise TypeError(value)
        if isinstance(value, str) and "/" in value:
            rate = Fraction(value.strip())
        else:
            rate = value if isinstance(value, Fraction) else Fraction(str(value).strip())
            number = float(rate)
            k = round(number * 1.001)
            ntsc = Fraction(k * 1000, 1001)
            if k > 0 and rate != k and abs(number - float(ntsc)) < NTSC_TOLERANCE:
                rate = ntsc
            rate = rate.limit_denominator(1_000_000)
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        raise ParameterError(
            f"{option}: expected a positive number or a fraction like 30000/1001, got {value!r}"
        ) from None
    if rate <= 0:
        raise ParameterError(f"{option}: expected a positive frame rate, got {value!r}")
    return rate


def fps_of_metadata(metadata: Mapping[str, Any] | None) -> Fraction | None:
    """The frame rate a reader recorded in a source's (or a layer's) metadata.

    Reads ``fps_fraction`` (``"30000/1001"``) first, then ``fps`` (a float), each through
    :func:`parse_fps`.  Returns None when neither is present or valid (a missing or broken
    rate in metadata is not the user's error; the caller picks its default).
    """
    if not metadata:
        return None
    for key in ("fps_fraction", "fps"):
        value = metadata.get(key)
        if value in (None, ""):
            continue
        try:
            return parse_fps(value, option=key)
        except ParameterError as exc:
            log.debug("ignoring metadata %s", exc)
    return None
