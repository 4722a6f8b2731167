from urllib.parse import urlparse

from django.conf import settings
from django.contrib.sites.models import Site
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Idempotent first-run setup used by `make run`: site name and the data every install needs."

    def handle(self, *args, **options):
        host = urlparse(settings.MODELGATE_PUBLIC_URL).netloc or "127.0.0.1:8000"
        Site.objects.update_or_create(pk=settings.SITE_ID, defaults={"domain": host, "name": "Modelgate"})
        self.stdout.write(f"site: {host}")
