"""The comparison apps of ``bench_capture``, served by the same uvicorn as Openline.

* ``bare_asgi``: answers every request with a no-op 200 (no Django, no database).
* ``django_app``: Django with Openline's settings and middleware, and this module as both the
  settings module and the URLconf: one sync view doing one durable INSERT of a record-shaped row.
  Run it with ``DJANGO_SETTINGS_MODULE=bench.capture_apps``.
"""

from __future__ import annotations

import uuid

from openline.settings import *  # noqa: F403 - the same settings as Openline, one URLconf less

ROOT_URLCONF = "bench.capture_apps"


async def bare_asgi(scope, receive, send) -> None:
    """Answer a no-op: the HTTP server's own ceiling."""
    if scope["type"] != "http":
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"2")],
        }
    )
    await send({"type": "http.response.body", "body": b"ok"})


def insert_one(request):
    """Store one record-shaped row (autocommit: one durable commit) and answer 201."""
    from django.db import connection
    from django.http import HttpResponse

    from bench.bench_capture import EVIDENCE, RECORD_INSERT

    with connection.cursor() as cursor:
        cursor.execute(RECORD_INSERT, [uuid.uuid4(), "b" * 64, EVIDENCE])
    return HttpResponse("ok", status=201)


def _urlpatterns():
    from django.urls import path

    return [path("", insert_one)]


_app = None


def __getattr__(name: str):
    # Built on first use so importing bare_asgi does not start Django.
    global _app
    if name == "urlpatterns":
        return _urlpatterns()
    if name == "django_app":
        if _app is None:
            from django.core.asgi import get_asgi_application

            _app = get_asgi_application()
        return _app
    raise AttributeError(name)
