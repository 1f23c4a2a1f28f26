"""Argument checks shared by every sub-package.

Each raises `TypeError` for a value of the wrong type and `ValueError` for one
out of range, with a message that names the argument and ends with
`Received: name=value` (the house style).
"""

import math
import numbers


def is_int(value):
    """An integer that is not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real(value):
    """A real number that is not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_int(name, value, minimum, allow_none=False):
    """Returns `value` as an int >= `minimum` (or `None` when allowed)."""
    if value is None and allow_none:
        return None
    if not is_int(value):
        raise TypeError(
            f"Argument `{name}` must be an integer >= {minimum}. "
            f"Received: {name}={value!r}"
        )
    if value < minimum:
        raise ValueError(
            f"Argument `{name}` must be an integer >= {minimum}. "
            f"Received: {name}={value}"
        )
    return int(value)


def check_real(name, value, low=None, high=None, low_open=False, high_open=False, allow_none=False):
    """Returns `value` as a finite float in the interval from `low` to `high`.

    `low_open`/`high_open` exclude the bound; `None` bounds are infinite.
    """
    if value is None and allow_none:
        return None
    if not is_real(value):
        raise TypeError(f"Argument `{name}` must be a number. Received: {name}={value!r}")
    value = float(value)
    bad = not math.isfinite(value)
    if low is not None:
        bad = bad or (value <= low if low_open else value < low)
    if high is not None:
        bad = bad or (value >= high if high_open else value > high)
    if bad:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        raise ValueError(
            f"Argument `{name}` must be a finite number in {left}{lo}, {hi}{right}. "
            f"Received: {name}={value}"
        )
    return value
