"""Load demo data once: three staff users, a consent and a "Website" Open Channel."""

from __future__ import annotations

import json
import os
import secrets

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction

from openline.accounts.models import Role, User
from openline.accounts.services import create_staff_user
from openline.consent.models import Agreement
from openline.consent.services import create_agreement
from openline.openchannels.models import ConnectorKind, OpenChannel
from openline.openchannels.services import create_open_channel

DEMO_USERS = [
    ("admin", Role.ADMINISTRATOR, "Alex Admin"),
    ("operator", Role.OPERATOR, "Olga Operator"),
    ("auditor", Role.AUDITOR, "Aki Auditor"),
]

DEMO_CONSENT_TEXT = """By starting this chat you agree that Openline demo company processes your \
personal data (name, contact details, the messages you send, your IP address and the page you \
write from) to answer your request.

We keep this data for up to 3 years. You can withdraw your consent at any time from the chat \
menu; read more in our privacy policy at https://example.com/privacy."""


class Command(BaseCommand):
    help = "Create demo users, a sample consent and a Website Open Channel (once), then print the logins."

    def handle(self, *args, **options):
        path = settings.VAR_DIR / "demo-logins.json"
        with transaction.atomic():
            created = self._load(path)
        logins = json.loads(path.read_text())
        self.stdout.write(
            ("Demo data loaded." if created else "Demo data already present.") + " Logins:"
        )
        for username, role, _ in DEMO_USERS:
            self.stdout.write(f"  {role.label:<14} {username:<10} password: {logins[username]}")

    def _load(self, path) -> bool:
        if User.objects.filter(username="admin").exists() and path.exists():
            return False
        passwords = json.loads(path.read_text()) if path.exists() else {}
        users = {}
        for username, role, name in DEMO_USERS:
            user = User.objects.filter(username=username).first()
            if user is None:
                passwords[username] = passwords.get(username) or secrets.token_urlsafe(9)
                user = create_staff_user(
                    username=username,
                    password=passwords[username],
                    role=role,
                    display_name=name,
                )
            users[username] = user
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(passwords, handle)
        agreement = Agreement.objects.filter(name="Website chat privacy notice").first()
        if agreement is None:
            agreement = create_agreement(
                actor=users["admin"],
                name="Website chat privacy notice",
                text=DEMO_CONSENT_TEXT,
                allow_html=False,
            )
        if not OpenChannel.objects.filter(name="Website").exists():
            create_open_channel(
                actor=users["admin"],
                name="Website",
                operators=[users["operator"]],
                connectors=[ConnectorKind.LIVECHAT],
                consent_enabled=True,
                agreement=agreement,
            )
        return True
