from django.urls import include, path
from django.views.generic import RedirectView

from openline.api.api import api
from openline.consent import urls as consent_urls
from openline.console import urls as console_urls
from openline.conversations import urls as conversations_urls
from openline.core import views as core_views
from openline.livechat import urls as livechat_urls

urlpatterns = [
    path("", RedirectView.as_view(url="/console/", permanent=False)),
    path("healthz", core_views.healthz, name="healthz"),
    path("readyz", core_views.readyz, name="readyz"),
    path("", include("openline.accounts.urls")),
    path("api/v1/", api.urls),
    # Public pages: consent texts and receipts, the live chat widget.
    path("c/", include("openline.consent.public_urls")),
    path("registry/", include("openline.consent.registry_urls")),
    path("registry/", include("openline.consent.receipt_urls")),
    path("widget/", include("openline.livechat.public_urls")),
    path("hooks/", include("openline.connectors.urls")),
    # The console (staff only; every view is role-checked).
    path("console/", include((console_urls.home_patterns, "core"))),
    path("console/contact-center/", include("openline.openchannels.urls")),
    path("console/contact-center/", include("openline.connectors.console_urls")),
    # One "consent" namespace: the registry's pages and those that also need Open Channels.
    path(
        "console/",
        include((consent_urls.urlpatterns + console_urls.consent_patterns, "consent")),
    ),
    # The live chat settings page keeps the name it was published under (in "conversations").
    path(
        "console/",
        include((conversations_urls.urlpatterns + livechat_urls.urlpatterns, "conversations")),
    ),
    path("console/crm/", include("openline.crm.urls")),
    path("console/webhooks/", include("openline.webhooks.urls")),
]

# A database or Redis outage raised outside a view (a middleware, a session save) is a 503.
handler500 = "openline.core.unavailable.server_error"
