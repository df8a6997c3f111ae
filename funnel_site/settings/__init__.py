"""Settings: everything is in base.py and read from the environment (see its docstring)."""

from funnel_site.settings.base import *  # noqa: F403
