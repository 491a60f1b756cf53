"""ASGI entry point: one application for HTTP and websockets."""

import gc
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "openline.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

django_asgi_app = get_asgi_application()

from openline.connectors.asgi import WebhookFastPath  # noqa: E402
from openline.core.proxy import TrustedProxyMiddleware, disable_uvicorn_proxy_headers  # noqa: E402
from openline.livechat.asgi import WidgetStartFastPath  # noqa: E402
from openline.routing import build_application  # noqa: E402

# Only openline.core.ip with OPENLINE_TRUSTED_PROXIES decides the client's address and scheme.
disable_uvicorn_proxy_headers()

# Messenger webhooks skip the console's middleware and run on a thread pool (connectors/asgi.py);
# the widget's chat start (the consent capture) runs on a thread pool too (livechat/asgi.py).
application = TrustedProxyMiddleware(
    WidgetStartFastPath(WebhookFastPath(build_application(django_asgi_app)))
)

# Everything loaded by now lives as long as the process (Django, the apps, the URLconf): move it
# out of the collector's sight. A full collection then walks only what requests and sockets
# create, instead of pausing the event loop for ~120,000 long-lived objects (a chat tail-latency
# cause: 306 ms for one full collection measured on a busy machine).
gc.freeze()
