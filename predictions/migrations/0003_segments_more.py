"""The default segments for workspaces that existed before segments did (new ones get them from
a post_save receiver)."""

from django.db import migrations

DEFAULTS = (
    ("Likely purchasers", "The 10 % of scored contacts most likely to purchase.",
     {"score": {"target": "purchase", "top_percent": 10}}),
    ("Churn risk", "Contacts whose churn probability is at least 0.6.",
     {"score": {"target": "churn", "min_probability": 0.6}}),
)


def create_defaults(apps, schema_editor):
    Workspace = apps.get_model("events", "Workspace")
    Segment = apps.get_model("predictions", "Segment")
    for workspace in Workspace.objects.all().iterator():
        for name, description, definition in DEFAULTS:
            Segment.objects.get_or_create(workspace=workspace, name=name, defaults={
                "description": description, "definition": definition, "is_builtin": True})


class Migration(migrations.Migration):

    dependencies = [("predictions", "0002_segments")]

    operations = [migrations.RunPython(create_defaults, migrations.RunPython.noop)]
