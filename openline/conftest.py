"""Shared fixtures: named personas, a live ASGI server, a real browser.

Tests that need PostgreSQL, Redis or the browser fail instead of skipping
when CI=true, so CI can never go green by skipping them.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
from django.test import Client

from openline.accounts.models import Role
from openline.accounts.services import create_staff_user
from openline.testing.server_process import free_port  # noqa: F401 - re-exported for tests

IN_CI = os.environ.get("CI", "").lower() == "true"
PASSWORD = "correct-horse-battery-staple-42"
ARTIFACTS = Path(
    os.environ.get(
        "OPENLINE_TEST_ARTIFACTS", Path(__file__).resolve().parent.parent / "test-results"
    )
)
CHROMIUM = os.environ.get("OPENLINE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def unavailable(reason: str) -> None:
    """Skip locally, fail in CI: a missing service must never pass CI silently."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: tests that need it fail instead of skipping)")
    pytest.skip(reason)


# ----- append-only tables vs. the test flush --------------------------------------------


def _trigger_compatible_flush() -> None:
    """Let transactional tests empty the append-only consent tables between tests.

    The consent registry's database triggers abort DELETE and TRUNCATE, which is how
    TransactionTestCase (``transactional_db``, ``live_asgi``) flushes after each test. Test
    code only: drop the triggers just for the flush and put them back straight after.
    """
    from django.db import connections
    from django.test import TransactionTestCase

    from openline.consent import triggers, visitor_triggers

    original = TransactionTestCase._fixture_teardown  # type: ignore[attr-defined]
    if getattr(original, "_keeps_consent_triggers", False):
        return

    def _fixture_teardown(self):
        aliases = list(self._databases_names(include_mirrors=False))
        for alias in aliases:
            triggers.drop(connections[alias])
            visitor_triggers.drop(connections[alias])
        try:
            original(self)
        finally:
            for alias in aliases:
                triggers.install(connections[alias])
                visitor_triggers.install(connections[alias])

    _fixture_teardown._keeps_consent_triggers = True  # type: ignore[attr-defined]
    TransactionTestCase._fixture_teardown = _fixture_teardown  # type: ignore[attr-defined]


_trigger_compatible_flush()


@pytest.fixture(scope="session", autouse=True)
def _close_database_pools(django_db_setup, django_db_blocker):
    """Close PostgreSQL connection pools before the test databases are dropped."""
    yield
    from django.db import connections

    with django_db_blocker.unblock():
        for connection in connections.all():
            if connection.vendor != "postgresql":
                continue
            connection.close_pool()
            # Server threads that ended while holding a pooled connection leave it open
            # until garbage collection; end those sessions so the database can be dropped.
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            connection.close()
            connection.close_pool()


@pytest.fixture(scope="session", autouse=True)
def _own_redis_namespace():
    """Give each test process its own Redis key prefix for the channel layer and the cache.

    Parallel test processes share CI's Redis and number their rows alike (every database has
    a user 2), so without this a group such as ``staff.user.2`` joined in one process would
    receive the access changes another process pushes.
    """
    from django.conf import settings

    prefix = f"test-{os.getpid()}"
    for layer in settings.CHANNEL_LAYERS.values():
        if "prefix" in layer.get("CONFIG", {}):
            layer["CONFIG"]["prefix"] = prefix
    if "KEY_PREFIX" in settings.CACHES["default"]:
        settings.CACHES["default"]["KEY_PREFIX"] = prefix


@pytest.fixture(autouse=True)
def _fresh_channel_layer():
    """Give every test its own channel layer instance.

    The Redis layer binds its receiving side to the first event loop that uses it; tests
    start and stop event loops (live servers, async_to_sync), so one shared instance
    would make a later test's server refuse to receive.
    """
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    """Start every test with full live chat rate-limit buckets.

    The buckets are keyed by client IP (127.0.0.1 for every test), in the process or in Redis
    under this test process's prefix: without this, whether a test is rate limited would
    depend on which tests ran before it.
    """
    from openline.conversations.limits import every_limiter

    for limiter in every_limiter():
        limiter.reset()
    yield


def pytest_collection_modifyitems(items):
    """Mark tests that need PostgreSQL, so the SQLite pass in CI can leave them out."""
    for item in items:
        if "postgres_only" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)


# ----- personas -------------------------------------------------------------------------


def _user(username: str, role: str, name: str):
    return create_staff_user(username=username, password=PASSWORD, role=role, display_name=name)


@pytest.fixture
def administrator(db):
    return _user("ada", Role.ADMINISTRATOR, "Ada Administrator")


@pytest.fixture
def operator(db):
    return _user("otto", Role.OPERATOR, "Otto Operator")


@pytest.fixture
def other_operator(db):
    return _user("olivia", Role.OPERATOR, "Olivia Operator")


@pytest.fixture
def auditor(db):
    return _user("audrey", Role.AUDITOR, "Audrey Auditor")


def _client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def admin_client(administrator) -> Client:  # noqa: PT004 - overrides pytest-django's
    return _client_for(administrator)


@pytest.fixture
def operator_client(operator) -> Client:
    return _client_for(operator)


@pytest.fixture
def auditor_client(auditor) -> Client:
    return _client_for(auditor)


@pytest.fixture
def agreement(administrator):
    from openline.consent.services import create_agreement

    return create_agreement(
        actor=administrator,
        name="Website privacy notice",
        text="We process your name, messages and IP address to answer you.\nSee https://example.com/privacy",
        allow_html=False,
    )


@pytest.fixture
def channel(administrator, operator, agreement):
    """The "Website" Open Channel: live chat, consent warning on, Otto answers it."""
    from openline.openchannels.services import create_open_channel

    return create_open_channel(
        actor=administrator,
        name="Website",
        operators=[operator],
        connectors=["livechat"],
        consent_enabled=True,
        agreement=agreement,
    )


# ----- services -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A reachable Redis URL (REDIS_URL or 127.0.0.1:6379)."""
    url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except Exception as exc:  # noqa: BLE001
        unavailable(f"Redis at {url} is not reachable: {exc}")
    return url


@pytest.fixture
def postgres_only(db):
    from django.db import connection

    if connection.vendor != "postgresql":
        unavailable("this test needs DATABASE_URL pointing at PostgreSQL")


class LiveServer:
    """Uvicorn serving Openline's ASGI app in a thread, on the test database."""

    def __init__(self) -> None:
        import uvicorn

        from openline.asgi import application

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            application,
            log_level="warning",
            lifespan="off",
            ws_ping_interval=None,
            # Open websockets must not keep a finished test's server alive.
            timeout_graceful_shutdown=2,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.run(self.server.serve(sockets=[self.sock]))

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the live ASGI server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)
        if self.thread.is_alive():
            self.server.force_exit = True
            self.thread.join(timeout=5)
        self.sock.close()
        assert not self.thread.is_alive(), "the live ASGI server did not stop"


@pytest.fixture
def live_asgi(transactional_db, settings):
    """Start a real uvicorn on a free loopback port; data must be committed to be seen."""
    settings.ALLOWED_HOSTS = ["*"]
    server = LiveServer().start()
    yield server
    server.stop()
    from django.db import connections

    connections.close_all()


# ----- browser --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    """A headless Debian chromium per test module, driven by Playwright.

    Module scope, not session: while Playwright's sync API is alive it keeps an event loop
    running in this thread, which breaks ``async_to_sync`` in later non-browser tests.
    """
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        unavailable(f"chromium not found at {CHROMIUM}")
    # That same loop makes Django's ORM guard refuse the test's own database calls.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    try:
        with sync_playwright() as playwright:
            instance = playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
            yield instance
            instance.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
    context.set_default_timeout(10_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.js_errors = errors  # type: ignore[attr-defined]
    yield page
    context.close()


def screenshot(page, name: str, **kwargs) -> Path:
    """Save a screenshot under test-results/screenshots/ and return its path."""
    path = ARTIFACTS / "screenshots" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=kwargs.pop("full_page", True), **kwargs)
    return path


def login(page, base_url: str, username: str, password: str = PASSWORD) -> None:
    """Log in through the real login form."""
    page.goto(f"{base_url}/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda url: "/login/" not in url)


@pytest.fixture
def own_cache(settings):
    """Give a test an empty cache of its own, so state kept in the cache never leaks.

    With REDIS_URL set the default cache is shared by every test process and run: a sign-in
    throttle counter or the checkpoint pusher's "last pushed" mark set by one test must not
    change what a test running at the same time in another process sees.
    """
    import uuid

    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": f"test-{uuid.uuid4().hex}",
        }
    }
