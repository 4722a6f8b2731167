"""The ``local`` provider's first model: ``local-ocr`` (RapidOCR, offline), priced per image
through the new ``fixed`` image rule; the ``local`` channel source."""

from django.db import migrations, models

from models_catalog.seed_local import apply_local_seed_migration


class Migration(migrations.Migration):

    dependencies = [
        ('models_catalog', '0003_alter_channel_source'),
    ]

    operations = [
        migrations.AlterField(
            model_name='aimodel',
            name='image_rule',
            field=models.CharField(choices=[('none', 'No image input'), ('openai_tiles', 'OpenAI 512px tiles (gpt-4o family)'), ('anthropic_pixels', 'Anthropic width×height/750'), ('gemini_tiles', 'Gemini 258 tokens per 768px tile'), ('qwen_patches', 'Qwen-VL 28px patches'), ('tiles', 'Generic tiles'), ('fixed', 'Fixed tokens per image')], default='none', max_length=32),
        ),
        migrations.AlterField(
            model_name='channel',
            name='source',
            field=models.CharField(choices=[('admin', 'Admin'), ('env', 'Environment'), ('simulator', 'Upstream simulator (demo)'), ('local', 'Local model (in process)')], default='admin', max_length=16),
        ),
        migrations.RunPython(apply_local_seed_migration, migrations.RunPython.noop),
    ]
