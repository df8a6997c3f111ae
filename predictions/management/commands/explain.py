"""python manage.py explain --workspace SLUG --contact ID [--target purchase|churn] [--model ID] [--json]"""

from __future__ import annotations

from django.core.management.base import CommandError

from funnel_site.cli import ContractCommand
from predictions.management.commands.score import model_for
from predictions.models import Target


class Command(ContractCommand):
    help = "A contact's score with the active model as of the newest event, and its top factors in words."

    def add_arguments(self, parser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--contact", required=True, help="the contact's id (as sent in events)")
        parser.add_argument("--target", default=Target.PURCHASE, choices=Target.values)
        parser.add_argument("--model", default=None, help="explain with this model id instead of the active one")
        parser.add_argument("--top", type=int, default=3, help="how many factors (default 3)")

    def handle(self, *args, **options) -> None:
        from funnel_site.events.models import Contact
        from predictions.scoring import contact_explain
        from predictions.services import PredictionError

        workspace = self.get_workspace(options["workspace"])
        contact = Contact.objects.filter(workspace=workspace, external_id=options["contact"]).first()
        if contact is None:
            raise CommandError(f"contact {options['contact']!r} does not exist in workspace {workspace.slug!r}")
        version = model_for(workspace, target=options["target"], model_id=options["model"])
        try:
            score = contact_explain(version=version, contact=contact, top_k=max(options["top"], 1))
        except PredictionError as exc:
            raise CommandError(str(exc)) from None
        payload = {
            "contact_id": contact.external_id,
            "target": version.target,
            "model_id": version.pk,
            "probability": score.probability,
            "above_threshold": score.probability >= (version.threshold or 0.5),
            "as_of": score.as_of,
            "factors": score.factors,
        }
        verb = "buys" if version.target == Target.PURCHASE else "churns"
        horizon_days = version.horizon_seconds / 86400
        lines = [f"{contact.external_id}: {score.probability:.1%} chance it {verb} within {horizon_days:g} days "
                 f"(model {version.pk}, as of {score.as_of:%Y-%m-%d %H:%M} UTC)"]
        for factor in score.factors:
            direction = "raises" if factor["contribution"] > 0 else "lowers"
            lines.append(f"  - {factor['text']} ({direction} it)")
        self.emit(options, payload, "\n".join(lines))
