"""Fixtures shared by the conversation tests: a channel with a messenger connected."""

from __future__ import annotations

import pytest

from openline.conversations.tests.inbound_helpers import with_buttons, with_telegram


@pytest.fixture
def messenger_channel(channel):
    """The persona channel with a connected Telegram connector (consent by warning)."""
    return with_telegram(channel)


@pytest.fixture
def buttons_channel(channel):
    """The same channel asking for consent with native buttons."""
    return with_buttons(with_telegram(channel))
