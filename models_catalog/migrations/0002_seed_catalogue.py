from django.db import migrations


def load_seed(apps, schema_editor):
    from models_catalog.seed import apply_seed

    apply_seed(
        AiModel=apps.get_model("models_catalog", "AiModel"),
        ModelAlias=apps.get_model("models_catalog", "ModelAlias"),
        TaskScore=apps.get_model("models_catalog", "TaskScore"),
        Price=apps.get_model("models_catalog", "Price"),
        PricingPlan=apps.get_model("models_catalog", "PricingPlan"),
    )


class Migration(migrations.Migration):
    dependencies = [("models_catalog", "0001_initial")]

    operations = [migrations.RunPython(load_seed, migrations.RunPython.noop)]
