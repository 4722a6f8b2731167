from django.core.management.base import BaseCommand

from models_catalog.services import catalogue_seed


class Command(BaseCommand):
    help = (
        "Load the seed catalogue (models, aliases, task scores, first prices, the standard plan). Idempotent."
    )

    def handle(self, *args, **options):
        self.stdout.write(f"seed catalogue: {catalogue_seed()} models")
