"""``local-ocr`` reads images only: its input modalities become ``["image"]`` so the capability
guard refuses a request without an image before any money moves (the seed, re-applied)."""

from django.db import migrations


def reapply_local_seed(apps, schema_editor):
    from models_catalog.seed_local import apply_local_seed

    apply_local_seed(
        AiModel=apps.get_model("models_catalog", "AiModel"),
        TaskScore=apps.get_model("models_catalog", "TaskScore"),
        Price=apps.get_model("models_catalog", "Price"),
    )


class Migration(migrations.Migration):
    dependencies = [
        ("models_catalog", "0004_local_ocr"),
    ]

    operations = [
        migrations.RunPython(reapply_local_seed, migrations.RunPython.noop),
    ]
