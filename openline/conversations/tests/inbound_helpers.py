"""Shared builders for the messenger conversation tests (inbound, outbox, their events)."""

from __future__ import annotations

from openline.conversations import inbound
from openline.conversations.inbound import ClientRef, SourceRef

KIND = "telegram"
SOURCE = SourceRef(type="crm_item", id="lead-7f3a", label="Lead: Иван Петров")


def ivan(external_id: str = "1001", **changes) -> ClientRef:
    """Ivan, a Russian-speaking Telegram user."""
    fields = {"name": "Иван Петров", "language": "ru", "username": "ivan_p", **changes}
    return ClientRef(external_id=external_id, **fields)


def client_visitor(channel, client: ClientRef | None = None):
    """Find or create Ivan's visitor on ``channel``."""
    return inbound.get_or_create_client(channel=channel, kind=KIND, client=client or ivan())


def receive(channel, visitor, key: str, text: str = "Hello", button: str = ""):
    """Deliver one inbound Telegram message from ``visitor``."""
    return inbound.receive_inbound(
        channel=channel,
        kind=KIND,
        visitor=visitor,
        key=key,
        text=text,
        button=button,
        source=SOURCE,
    )


def send_outbox(visitor) -> int:
    """Play the sender: mark every pending outbox item of ``visitor`` sent; return how many."""
    from openline.conversations import outbox
    from openline.conversations.models import OutboxItem

    items = OutboxItem.objects.filter(conversation__visitor=visitor, state="pending")
    count = 0
    for pk in items.order_by("id").values_list("pk", flat=True):
        claimed = outbox.claim(item_id=pk)
        assert claimed is not None
        outbox.record_sent(item=claimed, platform_message_id=f"out-{pk}")
        count += 1
    return count


def with_telegram(channel):
    """Give the "Website" channel a Telegram connector (warning mode, consent on)."""
    from openline.openchannels.models import Connector, ConnectorKind

    Connector.objects.create(channel=channel, kind=ConnectorKind.TELEGRAM)
    return channel


def with_buttons(channel):
    """Make ``channel`` ask messenger clients with native "I accept" / "I decline" buttons."""
    channel.messenger_consent_mode = "buttons"
    channel.save(update_fields=["messenger_consent_mode"])
    return channel


def consented(channel, external_id: str = "1001"):
    """Return Ivan's visitor after the warning and his confirming message (consent given)."""
    visitor = client_visitor(channel, ivan(external_id))
    receive(channel, visitor, f"{external_id}-m1", "Здравствуйте")
    send_outbox(visitor)  # the warning reached them: only now can writing again confirm it
    result = receive(channel, visitor, f"{external_id}-m2", "Хочу узнать о доставке")
    assert result.consent == "given"
    return result
