from django.urls import include, path
from django.views.generic import RedirectView

from openline.core import views as core_views

urlpatterns = [
    path("", RedirectView.as_view(url="/console/", permanent=False)),
    path("healthz", core_views.healthz, name="healthz"),
    path("readyz", core_views.readyz, name="readyz"),
    path("", include("openline.accounts.urls")),
    path("console/", include("openline.core.urls")),
    path("console/contact-center/", include("openline.openchannels.urls")),
    path("console/", include("openline.consent.urls")),
]
