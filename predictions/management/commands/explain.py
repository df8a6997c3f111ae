"""python manage.py explain --workspace SLUG --contact ID [--target purchase|churn] [--json]"""

from __future__ import annotations

from django.core.management.base import CommandError

from funnel_site.cli import ContractCommand
from predictions.management.commands.train import check_target
from predictions.models import Target


class Command(ContractCommand):
    help = ("A contact's newest score per target with its top factors in words (the same list as "
            "GET /api/v1/contacts/{id}/predictions); a score not explained yet is explained here and kept.")

    def add_arguments(self, parser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--contact", required=True, help="the contact's id (as sent in events)")
        # validated in handle (check_target): one sentence and exit 1, not argparse's usage and exit 2
        parser.add_argument("--target", default=None, help=f"only this target ({' or '.join(Target.values)})")

    def handle(self, *args, **options) -> None:
        from funnel_site.events.models import Contact
        from predictions.realtime import contacts_rescore, score_explain
        from predictions.selectors import contact_current_scores, prediction_json

        check_target(options["target"])
        workspace = self.get_workspace(options["workspace"])
        contact = Contact.objects.filter(workspace=workspace, external_id=options["contact"]).first()
        if contact is None:
            raise CommandError(f"contact {options['contact']!r} does not exist in workspace {workspace.slug!r}")
        scores = contact_current_scores(contact=contact)
        if not scores:  # never scored: score it now with the active models (stored like a real-time rescoring)
            contacts_rescore(workspace_id=workspace.pk, contact_ids=[contact.pk], explain=True)
            scores = contact_current_scores(contact=contact)
        if options["target"]:
            scores = [s for s in scores if s.target == options["target"]]
        if not scores:
            raise CommandError(
                f"contact {contact.external_id!r} has no score: it needs an active model "
                f"(manage.py train --workspace {workspace.slug} --target purchase) and own activity in its lookback"
            )
        listing = [prediction_json(score_explain(score_id=s.pk) or s) for s in scores]
        lines = []
        horizons = {s.target: s.model_version.horizon_seconds / 86400 for s in scores}
        for item in listing:
            verb = "buys" if item["target"] == Target.PURCHASE else "churns"
            pct = f", percentile {item['percentile']:.1f}" if item["percentile"] is not None else ""
            lines.append(f"{contact.external_id}: {item['probability']:.1%} chance it {verb} within "
                         f"{horizons[item['target']]:g} days{pct} (model {item['model_id']}, as of "
                         f"{item['as_of'][:16]} UTC)")
            if item["base_value"] is not None:
                lines.append(f"  base value {item['base_value']:.3f}")
            lines.extend(f"  - {f['text']}: {f['value']:+.3f}" for f in item["factors"])
        self.emit(options, listing, "\n".join(lines))
