import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create the bootstrap `admin` login if it does not exist and print its password once (used by `make run`)."

    def add_arguments(self, parser):
        # BOOTSTRAP_ADMIN: the one login that keeps a password when LOCAL_PASSWORDS is off.
        parser.add_argument("--username", default=settings.BOOTSTRAP_ADMIN)
        parser.add_argument("--password", default=None, help="default: a new random password")

    def handle(self, username, password, **options):
        User = get_user_model()
        if User.objects.filter(username=username).exists():
            self.stdout.write(f"Login '{username}' already exists; its password is unchanged.")
            return
        password = password or secrets.token_urlsafe(12)
        user = User.objects.create_superuser(username=username, email="", password=password)
        user.groups.add(Group.objects.get(name="admin"))
        self.stdout.write(f"Created login '{username}' with password: {password}")
