import uuid

import pytest


@pytest.fixture(autouse=True)
def _own_cache(settings):
    """Give each test an empty cache of its own, so sign-in throttle counters never leak.

    With REDIS_URL set the default cache is shared by every test process and run; a bad
    login in one test must not throttle the next.
    """
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": f"accounts-test-{uuid.uuid4().hex}",
        }
    }
