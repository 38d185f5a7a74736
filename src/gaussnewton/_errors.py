"""Shared validators and exceptions.

Every message names the argument in backticks, states what was expected and echoes what was
received, so that a user can fix the call without reading the source (STYLE rule 4). The
messages are pinned by regexes in ``tests/test_errors.py``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Literal, overload

import numpy as np
import torch

__all__ = [
    "GaussNewtonError",
    "NonFiniteError",
    "check_choice",
    "check_working_dtype",
    "check_finite_tensor",
    "check_in_range",
    "check_nonneg",
    "check_positive",
    "check_positive_int",
    "to_float_tensor",
]


class GaussNewtonError(ValueError):
    """Base class of the errors raised by :mod:`gaussnewton` for bad input."""


class NonFiniteError(GaussNewtonError):
    """A value that must be finite contains NaN or Inf."""


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
    if isinstance(value, np.ndarray):
        return f"array of shape {value.shape} and dtype {value.dtype}"
    return repr(value)


def check_positive(name: str, value: Any, *, allow_inf: bool = False) -> float:
    """Return ``float(value)`` after checking it is a real number > 0.

    Raises:
        GaussNewtonError: if the value is not a number or not > 0.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise GaussNewtonError(f"`{name}` must be a positive number; got {_describe(value)}.")
    v = float(value)
    if math.isnan(v) or v <= 0 or (math.isinf(v) and not allow_inf):
        raise GaussNewtonError(f"`{name}` must be a finite number > 0; got {name} = {value!r}.")
    return v


def check_nonneg(name: str, value: Any) -> float:
    """Return ``float(value)`` after checking it is a finite real number >= 0.

    Raises:
        GaussNewtonError: if the value is not a number or is negative / non-finite.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise GaussNewtonError(f"`{name}` must be a number >= 0; got {_describe(value)}.")
    v = float(value)
    if not math.isfinite(v) or v < 0:
        raise GaussNewtonError(f"`{name}` must be a finite number >= 0; got {name} = {value!r}.")
    return v


def check_in_range(
    name: str, value: Any, low: float, high: float, *, low_open: bool = True, high_open: bool = True
) -> float:
    """Return ``float(value)`` after checking it lies in the interval (low, high).

    Raises:
        GaussNewtonError: if the value is outside the interval.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise GaussNewtonError(f"`{name}` must be a number; got {_describe(value)}.")
    v = float(value)
    lo_ok = v > low if low_open else v >= low
    hi_ok = v < high if high_open else v <= high
    if math.isnan(v) or not (lo_ok and hi_ok):
        lb = "(" if low_open else "["
        hb = ")" if high_open else "]"
        raise GaussNewtonError(
            f"`{name}` must lie in {lb}{low}, {high}{hb}; got {name} = {value!r}."
        )
    return v


@overload
def check_positive_int(name: str, value: Any, *, allow_none: Literal[False] = ...) -> int: ...


@overload
def check_positive_int(name: str, value: Any, *, allow_none: bool) -> int | None: ...


def check_positive_int(name: str, value: Any, *, allow_none: bool = False) -> int | None:
    """Return ``int(value)`` after checking it is an integer >= 1 (or None if allowed).

    Raises:
        GaussNewtonError: if the value is not a positive integer.
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise GaussNewtonError(f"`{name}` must be an integer >= 1; got {name} = {value!r}.")
    return int(value)


def check_working_dtype(what: str, dtype: torch.dtype) -> None:
    """Refuse a half-precision dtype: the damped GN system needs float32 or float64.

    torch.linalg has no float16/bfloat16 Cholesky or eigh on CPU, and with 3 significant digits
    the Gram matrix JᵀJ (which squares the condition number) is meaningless.

    Args:
        what: the argument, as the message names it (e.g. ```x0``` or ```model`` parameters``).
        dtype: its dtype.

    Raises:
        GaussNewtonError: for a floating dtype narrower than 32 bits.

    Example:
        >>> check_working_dtype("`x0`", torch.float16)
        Traceback (most recent call last):
        ...
        gaussnewton._errors.GaussNewtonError: `x0` must be float32 or float64 ...
    """
    if dtype.is_floating_point and torch.finfo(dtype).bits < 32:
        raise GaussNewtonError(
            f"{what} must be float32 or float64 for Gauss-Newton's linear algebra (the Gram matrix JᵀJ and "
            f"its Cholesky factor); got {dtype}. Convert with .float() (and keep autocast for other "
            "optimizers), or .double() for the most accurate steps.")


def check_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    """Return ``value`` after checking it is one of ``choices``.

    Raises:
        GaussNewtonError: if the value is not one of the choices.
    """
    options = tuple(choices)
    if value not in options:
        raise GaussNewtonError(
            f"`{name}` must be one of {', '.join(repr(c) for c in options)}; got {value!r}."
        )
    return value


def to_float_tensor(
    name: str,
    value: Any,
    *,
    ndim: int | tuple[int, ...] | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Convert a tensor, numpy array or nested list to a floating-point tensor and validate it.

    Integer input is promoted to float64 (or ``dtype``); complex input is refused.

    Args:
        name: argument name used in error messages.
        value: the input.
        ndim: required number of dimensions (an int or a tuple of allowed ints).
        dtype: target floating dtype; default keeps a floating input's dtype, else float64.
        device: target device.

    Returns:
        torch.Tensor: the converted tensor.

    Raises:
        GaussNewtonError: wrong type, complex or non-floating dtype, or wrong number of dims.
        NonFiniteError: the input contains NaN or Inf.
    """
    if isinstance(value, torch.Tensor):
        t = value
    elif isinstance(value, (np.ndarray, list, tuple, float, int, np.floating)):
        try:
            t = torch.as_tensor(np.asarray(value))
        except (TypeError, ValueError) as exc:
            raise GaussNewtonError(
                f"`{name}` must be a tensor, numpy array or list of numbers; "
                f"got {_describe(value)} ({exc})."
            ) from None
    else:
        raise GaussNewtonError(
            f"`{name}` must be a tensor, numpy array or list of numbers; got {type(value).__name__}."
        )
    if t.is_complex():
        raise GaussNewtonError(f"`{name}` must be real; got complex dtype {t.dtype}.")
    if t.dtype == torch.bool:
        raise GaussNewtonError(f"`{name}` must have a numeric dtype; got {t.dtype}.")
    target = dtype if dtype is not None else (t.dtype if t.is_floating_point() else torch.float64)
    if target not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        raise GaussNewtonError(f"`{name}` must be floating point; got dtype {target}.")
    t = t.to(dtype=target, device=device)
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else ndim
        if t.ndim not in allowed:
            want = " or ".join(str(a) for a in allowed)
            raise GaussNewtonError(
                f"`{name}` must be {want}-dimensional; got shape {tuple(t.shape)}."
            )
    check_finite_tensor(name, t)
    return t


def check_finite_tensor(name: str, t: torch.Tensor) -> None:
    """Raise :class:`NonFiniteError` naming ``name`` if ``t`` has NaN or Inf entries.

    Raises:
        NonFiniteError: if any entry is NaN or Inf.
    """
    finite = torch.isfinite(t)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        first = tuple(int(i) for i in (~finite).nonzero()[0].tolist())
        raise NonFiniteError(
            f"`{name}` must be finite; got {bad} NaN/Inf entr{'y' if bad == 1 else 'ies'} "
            f"(first at index {first})."
        )
