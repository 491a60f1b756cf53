from django.urls import include, path
from django.views.generic import RedirectView

from openline.api.api import api
from openline.core import views as core_views

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
    # The console (staff only; every view is role-checked).
    path("console/", include("openline.core.urls")),
    path("console/contact-center/", include("openline.openchannels.urls")),
    path("console/", include("openline.consent.urls")),
    path("console/", include("openline.conversations.urls")),
    path("console/crm/", include("openline.crm.urls")),
]
