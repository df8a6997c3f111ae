"""The Django project and the core domain (events, funnels, dashboard)."""
from .celery import app as celery_app

__all__ = ("celery_app",)
