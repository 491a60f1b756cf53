"""ASGI entry point: one application for HTTP and websockets."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "openline.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

django_asgi_app = get_asgi_application()

from openline.routing import build_application  # noqa: E402

application = build_application(django_asgi_app)
