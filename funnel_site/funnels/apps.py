import logging
import os
import sys
import threading

from django.apps import AppConfig
from django.conf import settings

logger = logging.getLogger(__name__)
_warming: threading.Thread | None = None


def _warm() -> None:
    from funnel_site.funnels.engine.warmup import warm_kernels

    try:
        seconds = warm_kernels()
    except Exception:  # a failed warm-up only means the first query compiles; never crash a process
        logger.exception("funnel kernel warm-up failed")
        return
    logger.info("funnel kernels ready in %.1fs", seconds)


def _join_before_fork() -> None:
    # A fork while the warm-up thread holds numba's compiler lock would leave the child's copy of
    # the lock held forever (gunicorn --preload, Celery's prefork pool): let the warm-up finish.
    if _warming is not None and _warming.is_alive():
        _warming.join()


def _serves_funnels() -> bool:
    """Web servers, workers and scripts warm the kernels; management commands (bar runserver)
    and the test runner do not: they would only compete for the CPU with what they are doing."""
    if "pytest" in sys.modules:
        return False
    argv = sys.argv or [""]
    if os.path.basename(argv[0]) == "manage.py":
        return len(argv) > 1 and argv[1] == "runserver"
    return True


class FunnelsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "funnel_site.funnels"
    label = "funnels"

    def ready(self) -> None:
        """Start loading (or compiling) the funnel kernels in the background in web and worker processes."""
        global _warming
        if not getattr(settings, "FUNNEL_WARM_KERNELS", True) or _warming is not None or not _serves_funnels():
            return
        _warming = threading.Thread(target=_warm, name="funnel-kernel-warm-up", daemon=True)
        _warming.start()
        os.register_at_fork(before=_join_before_fork)
