"""``local-ocr`` reads images only: its input modalities become ``["image"]`` so the capability
guard refuses a request without an image before any money moves (the seed, re-applied)."""

from django.db import migrations

from models_catalog.seed_local import apply_local_seed_migration


class Migration(migrations.Migration):
    dependencies = [
        ("models_catalog", "0004_local_ocr"),
    ]

    operations = [
        migrations.RunPython(apply_local_seed_migration, migrations.RunPython.noop),
    ]
