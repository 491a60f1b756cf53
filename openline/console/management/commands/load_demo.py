"""Load demo data once: three staff users, a consent and a "Website" Open Channel.

The demo channel is marked in its live chat connector's configuration (``DEMO_MARKER``) and is
found by that mark only: a channel an administrator named "Website" is never touched. Every run
also allows the demo website (``serve`` starts it on loopback, OPENLINE_DEMO_PORT) to show the
demo channel's chat, at each address a browser on this machine may use for it. A second run
changes nothing; every change goes through the audited services.
"""

from __future__ import annotations

import json
import logging
import os
import secrets

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction

from openline.accounts.models import Role, User
from openline.accounts.services import create_staff_user
from openline.consent.models import Agreement
from openline.consent.services import create_agreement
from openline.console.demo_site import DEMO_CHANNEL_NAME, DEMO_MARKER, marked_demo_channel
from openline.core.serving import demo_host, listen_from_env, origins
from openline.livechat.origins import CONFIG_KEY, allowed_origins
from openline.openchannels.appearance import update_appearance
from openline.openchannels.models import ConnectorKind
from openline.openchannels.services import create_open_channel, set_connector

# The logger the console's allowed-websites form writes to.
audit_log = logging.getLogger("openline.audit.openchannels")

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
DEMO_TITLE = "Harbour Coffee Roasters"
DEMO_COLOR = "#6b3e26"
DEMO_GREETING = "Hi! Questions about our coffee, grinding or delivery? Write to us here."


class Command(BaseCommand):
    help = "Create demo users, a sample consent and a Website Open Channel (once), then print the logins."

    def handle(self, *args, **options):
        path = settings.VAR_DIR / "demo-logins.json"
        with transaction.atomic():
            created = self._load(path)
            added = self._allow_demo_site()
        logins = json.loads(path.read_text())
        self.stdout.write(
            ("Demo data loaded." if created else "Demo data already present.") + " Logins:"
        )
        for username, role, _ in DEMO_USERS:
            self.stdout.write(f"  {role.label:<14} {username:<10} password: {logins[username]}")
        if added:
            self.stdout.write(
                f"The {DEMO_CHANNEL_NAME} channel's live chat now also opens on the demo website: "
                + ", ".join(added)
            )

    def _allow_demo_site(self) -> list[str]:
        """Allow the demo website's origins on the demo channel; return the ones added."""
        listen = listen_from_env()
        if not listen.demo_site or settings.CONFIG.production:
            return []
        channel = marked_demo_channel()
        if channel is None:
            return []
        connector = channel.connector(ConnectorKind.LIVECHAT)
        admin = _demo_admin()
        if connector is None or admin is None:
            return []
        current = allowed_origins(channel)
        # Where serve starts the demo website: loopback, whatever OPENLINE_HOST says.
        wanted = origins(demo_host(listen.host), listen.demo_port)
        added = [o for o in wanted if o not in current]
        if added:
            set_connector(
                actor=admin,
                channel=channel,
                kind=ConnectorKind.LIVECHAT,
                is_enabled=connector.is_enabled,
                config={**connector.config, CONFIG_KEY: current + added},
            )
            audit_log.info(
                "channel %s allowed websites changed by %s: %s -> %s",
                channel.pk,
                admin.get_username(),
                current,
                current + added,
            )
        return added

    def _load(self, path) -> bool:
        present = User.objects.filter(username="admin").exists() and path.exists()
        # A database from before the demo channel was marked gets a marked one now.
        if present and marked_demo_channel() is not None:
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
        if marked_demo_channel() is None:
            channel = create_open_channel(
                actor=users["admin"],
                name=DEMO_CHANNEL_NAME,
                operators=[users["operator"]],
                connectors=[ConnectorKind.LIVECHAT],
                consent_enabled=True,
                agreement=agreement,
            )
            # The mark that makes it the demo channel (no form writes this key).
            set_connector(
                actor=users["admin"],
                channel=channel,
                kind=ConnectorKind.LIVECHAT,
                is_enabled=True,
                config={DEMO_MARKER: True},
            )
            # How the chat looks on the demo website (a coffee shop).
            update_appearance(
                actor=users["admin"],
                channel=channel,
                display_name=DEMO_TITLE,
                color=DEMO_COLOR,
                greeting=DEMO_GREETING,
            )
        return True


def _demo_admin() -> User | None:
    """Return the demo administrator, else the first administrator (the actor of the changes)."""
    admins = User.objects.filter(role=Role.ADMINISTRATOR, is_active=True)
    return admins.filter(username="admin").first() or admins.order_by("pk").first()
