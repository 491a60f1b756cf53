"""Fixtures for connector tests: a fake messenger platform on loopback."""

from __future__ import annotations

import pytest

from openline.testing.fake_platforms import FakePlatform


@pytest.fixture
def fake_platform(settings):
    """A loopback HTTP server standing in for every platform API (base URLs point at it)."""
    platform = FakePlatform()
    settings.OPENLINE_TELEGRAM_API_URL = platform.base_url
    settings.OPENLINE_GRAPH_API_URL = platform.base_url + "/v21.0"
    settings.OPENLINE_VIBER_API_URL = platform.base_url
    yield platform
    platform.stop()
