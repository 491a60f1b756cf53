"""A bare ASGI app that tells which worker answered and its garbage collector's thresholds."""

from __future__ import annotations

import gc
import json
import os


async def app(scope, receive, send) -> None:
    assert scope["type"] == "http"
    body = json.dumps({"pid": os.getpid(), "thresholds": gc.get_threshold()}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})
