from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.models import User
from accounts.services import organization_create, user_create


class Command(BaseCommand):
    help = "Create an organization owned by a user (created if missing). Prints the slug last."

    def add_arguments(self, parser):
        parser.add_argument("--owner-email", required=True)
        parser.add_argument("--name", required=True)
        parser.add_argument("--password", default=None, help="Password for a new owner (else unusable).")

    @transaction.atomic
    def handle(self, *args, owner_email, name, password, **options):
        email = owner_email.strip().lower()
        if "@" not in email:
            raise CommandError("--owner-email must be an e-mail address.")
        owner = User.objects.filter(email__iexact=email).first()
        if owner is None:
            owner = user_create(email=email, password=password)
            self.stderr.write(f"created user {email}")
        org = organization_create(owner=owner, name=name)
        self.stdout.write(org.slug)
