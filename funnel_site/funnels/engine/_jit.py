"""The one place that imports numba: `njit` compiles when numba is installed, else it is a no-op."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

try:  # numba ships with shap; without it the kernels run as (slow) plain Python.
    from numba import njit as _numba_njit
    from numba.core import config as _numba_config

    if os.environ.get("NUMBA_CACHE_DIR"):
        # numba reads the variable when it is first imported; set it here too in case something
        # imported numba before the settings named the shared cache folder.
        _numba_config.CACHE_DIR = os.environ["NUMBA_CACHE_DIR"]

    NUMBA_AVAILABLE = True
except ImportError:  # pragma: no cover - exercised only where numba is missing
    _numba_njit = None
    NUMBA_AVAILABLE = False


def njit(function: Callable[..., Any] | None = None, *, inline: bool = False) -> Callable[..., Any]:
    """Compile `function` with numba (nopython, cached on disk) when available.

    `inline=True` inlines a small helper into its callers at numba's IR level: LLVM does not
    inline a call that passes several arrays, and the per-event call was a third of the lean
    kernel's time (`@njit(inline=True)`).
    """
    if function is None:
        return lambda f: njit(f, inline=inline)
    if _numba_njit is None:  # pragma: no cover
        return function
    options = {"inline": "always"} if inline else {}
    return _numba_njit(cache=True, nogil=True, **options)(function)
