from django.db import migrations

USD = 1_000_000_000

RULES = [
    # name, min amount, percent (basis points), fixed bonus, first top-up only
    ("First top-up of $5 or more: +$1", 5 * USD, 0, 1 * USD, True),
    ("Top-up of $100 or more: +5%", 100 * USD, 500, 0, False),
    ("Top-up of $500 or more: +10%", 500 * USD, 1000, 0, False),
]


def seed(apps, schema_editor):
    BonusRule = apps.get_model("billing", "BonusRule")
    for name, minimum, percent_bp, fixed, first_only in RULES:
        BonusRule.objects.get_or_create(
            name=name,
            defaults={
                "min_amount_units": minimum,
                "percent_bp": percent_bp,
                "fixed_units": fixed,
                "first_topup_only": first_only,
            },
        )


def unseed(apps, schema_editor):
    BonusRule = apps.get_model("billing", "BonusRule")
    BonusRule.objects.filter(name__in=[r[0] for r in RULES]).delete()


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_initial")]

    operations = [migrations.RunPython(seed, unseed)]
