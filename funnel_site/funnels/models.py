"""Saved funnels: a named funnel query of a workspace, re-run on demand (results are cached)."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class SavedFunnel(models.Model):
    """A funnel definition saved under a name; `definition` is the canonical JSON of `spec.py`."""

    workspace = models.ForeignKey("events.Workspace", on_delete=models.CASCADE, related_name="saved_funnels")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    definition = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "name"], name="uniq_saved_funnel_name")]
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name

    @property
    def step_labels(self) -> list[str]:
        """Labels of the saved steps (for lists), e.g. ['pv', 'stage:purchase']."""
        labels = []
        for step in self.definition.get("steps", []):
            labels.append(step.get("name") or (f"stage:{step['stage']}" if step.get("stage") else "|".join(step.get("events", []))))
        return labels
