from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from console.actions import do_create_api_token


class Command(BaseCommand):
    help = "Create an API token for a user and print it (only its hash is stored)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="cli", help="a label to recognise the token by")

    def handle(self, username, name, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user named {username!r}")
        self.stdout.write(do_create_api_token(user, user, name, via="cli"))
