"""Create a staff user: ``manage.py create_user NAME --role operator``."""

from __future__ import annotations

import getpass
import sys

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from openline.accounts.models import Role, User
from openline.accounts.services import create_staff_user


class Command(BaseCommand):
    help = "Create a staff user with a role (administrator, operator or auditor)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=Role.values)
        parser.add_argument("--email", default="")
        parser.add_argument("--name", default="", help="display name")
        parser.add_argument(
            "--password-stdin",
            action="store_true",
            help="read the password from standard input instead of prompting",
        )

    def handle(self, *args, **options):
        username = options["username"]
        if User.objects.filter(username__iexact=username).exists():
            raise CommandError(f"A user named {username!r} already exists.")
        if options["password_stdin"]:
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = getpass.getpass("Password: ")
            if password != getpass.getpass("Password (again): "):
                raise CommandError("The passwords do not match.")
        try:
            user = create_staff_user(
                username=username,
                password=password,
                role=options["role"],
                email=options["email"],
                display_name=options["name"],
            )
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        self.stdout.write(self.style.SUCCESS(f"Created {user.role} {user.username}."))
