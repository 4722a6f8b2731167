import os
from urllib.parse import urlparse

from django.conf import settings
from django.contrib.sites.models import Site
from django.core.management.base import BaseCommand

from models_catalog.constants import ChannelSource
from models_catalog.models import Channel
from models_catalog.services import channels_sync_from_env, channels_sync_local, channels_sync_simulator


class Command(BaseCommand):
    help = (
        "Idempotent first-run setup used by `make run`: the site name, channels from provider keys in the "
        "environment, and — when there are none — the upstream simulator as a clearly labelled demo upstream."
    )

    def handle(self, *args, **options):
        host = urlparse(settings.MODELGATE_PUBLIC_URL).netloc or "127.0.0.1:8000"
        Site.objects.update_or_create(pk=settings.SITE_ID, defaults={"domain": host, "name": "Modelgate"})
        self.stdout.write(f"site: {host}")
        env_result = channels_sync_from_env(os.environ)
        self.stdout.write(f"local models: {channels_sync_local()}")
        real = Channel.objects.filter(enabled=True).exclude(
            source__in=[ChannelSource.SIMULATOR, ChannelSource.LOCAL]
        )
        simulator_url = settings.MODELGATE_SIMULATOR_URL
        if real.exists():
            Channel.objects.filter(source=ChannelSource.SIMULATOR).update(enabled=False)
            self.stdout.write(f"channels from the environment: {env_result}")
        else:
            channels_sync_simulator(base_url=simulator_url)
            self.stdout.write(
                f"No provider keys are set: models are answered by the UPSTREAM SIMULATOR at {simulator_url} "
                "(a demo, not a real model). Set OPENAI_API_KEY, ANTHROPIC_API_KEY, … to use real providers."
            )
