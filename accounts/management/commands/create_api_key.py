from django.core.management.base import BaseCommand, CommandError

from accounts.models import Membership, Role
from accounts.services import api_key_create


class Command(BaseCommand):
    help = "Create an API key for an organization (on behalf of its first owner). Prints the secret last."

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True, help="Organization slug")
        parser.add_argument("--name", required=True)

    def handle(self, *args, org, name, **options):
        owner = (
            Membership.objects.select_related("organization", "user")
            .filter(organization__slug=org, role=Role.OWNER)
            .order_by("pk")
            .first()
        )
        if owner is None:
            raise CommandError(f"No organization {org!r} (or it has no owner).")
        key, secret = api_key_create(actor=owner, name=name)
        self.stderr.write(f"key {key.prefix}… for {owner.organization.slug}")
        self.stdout.write(secret)
