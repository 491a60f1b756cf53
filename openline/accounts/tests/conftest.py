import pytest


@pytest.fixture(autouse=True)
def _own_cache(own_cache):
    """Each accounts test gets an empty cache: sign-in throttle counters never leak."""
