"""python manage.py suggest_stages --workspace SLUG [--json]"""

from __future__ import annotations

from funnel_site.cli import ContractCommand


class Command(ContractCommand):
    help = ("Run the CRF stage tagger on the workspace's events now and list a suggested stage, with its "
            "confidence, for every event name the stage map does not know. Nothing changes by itself: a person "
            "accepts or dismisses each suggestion (admin, or the workspace's settings page).")

    def handle(self, *args, **options) -> None:
        from predictions.selectors import stage_suggestions
        from predictions.services import stage_suggestions_refresh

        workspace = self.get_workspace(options["workspace"])
        stored = stage_suggestions_refresh(workspace=workspace)
        listing = [{"event_name": s.event_name, "stage": s.stage, "confidence": round(s.confidence, 4),
                    "occurrences": s.occurrences, "alternatives": s.alternatives}
                   for s in stage_suggestions(workspace.pk)]
        if listing:
            lines = [f"{len(listing)} unmapped event name{'s' if len(listing) != 1 else ''} in {workspace.slug}, "
                     "most confident first (accept or dismiss each in the admin or on the settings page):"]
            lines += [f"  {s['event_name']} -> {s['stage']} (confidence {s['confidence']:.0%}, "
                      f"{s['occurrences']} events)" for s in listing]
        else:
            lines = [f"no suggestion for {workspace.slug}: every event name is mapped (or decided), or no mapped "
                     "events to learn from"]
        self.emit(options, {"workspace": workspace.slug, "stored": stored, "suggestions": listing}, "\n".join(lines))
