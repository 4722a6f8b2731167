import os

from django.core.management.base import BaseCommand

from models_catalog.services import channels_sync_from_env


class Command(BaseCommand):
    help = (
        "Create or update one channel per provider whose API key is in the environment "
        "(OPENAI_, ANTHROPIC_, XAI_, DASHSCOPE_, GEMINI_ API_KEY / BASE_URL). Idempotent."
    )

    def handle(self, *args, **options):
        result = channels_sync_from_env(os.environ)
        if not result:
            self.stdout.write("env channels: no provider API keys in the environment")
        for name, action in sorted(result.items()):
            self.stdout.write(f"{name}: {action}")
