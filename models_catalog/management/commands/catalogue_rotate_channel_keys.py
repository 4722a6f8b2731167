from django.core.management.base import BaseCommand

from models_catalog.services import channel_keys_rotate


class Command(BaseCommand):
    help = "Re-encrypt every channel API key with the newest FIELD_ENCRYPTION_KEY (put it first in the list)."

    def handle(self, *args, **options):
        self.stdout.write(f"re-encrypted {channel_keys_rotate()} channel keys")
