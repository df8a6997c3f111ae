"""The one place that imports numba: `njit` compiles when numba is installed, else it is a no-op."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

try:  # numba ships with shap; without it the kernels run as (slow) plain Python.
    from numba import njit as _numba_njit

    NUMBA_AVAILABLE = True
except ImportError:  # pragma: no cover - exercised only where numba is missing
    _numba_njit = None
    NUMBA_AVAILABLE = False


def njit(function: Callable[..., Any]) -> Callable[..., Any]:
    """Compile `function` with numba (nopython, cached on disk) when available."""
    if _numba_njit is None:  # pragma: no cover
        return function
    return _numba_njit(cache=True, nogil=True)(function)
