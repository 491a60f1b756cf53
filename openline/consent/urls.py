"""The registry's own console pages (namespace ``consent``).

``openline/urls.py`` adds the pages that also need Open Channels (``console.urls``) to the
same namespace, so every ``consent:`` URL name stays where it always was.
"""

from django.urls import path

from openline.consent import record_views, registry_views, version_views, views

app_name = "consent"
urlpatterns = [
    path("consents/", views.agreement_list, name="agreements"),
    path("consents/preview/", views.agreement_preview, name="agreement_preview"),
    path("consents/<int:pk>/", views.agreement_edit, name="agreement_edit"),
    path("consents/<int:pk>/languages/", views.agreement_languages, name="agreement_languages"),
    path(
        "consents/<int:pk>/versions/", version_views.agreement_versions, name="agreement_versions"
    ),
    path(
        "consents/<int:pk>/versions/<int:number>/",
        version_views.version_detail,
        name="version_detail",
    ),
    path(
        "consents/<int:pk>/versions/<int:number>/diff/",
        version_views.version_diff,
        name="version_diff",
    ),
    path("consents/<int:pk>/active/", views.agreement_set_active, name="agreement_set_active"),
    path(
        "obtained-consents/<uuid:record_uuid>/",
        record_views.record_detail,
        name="record_detail",
    ),
    path(
        "obtained-consents/<uuid:record_uuid>/receipt/",
        record_views.record_receipt,
        name="record_receipt",
    ),
    path("registry/", registry_views.verify_page, name="registry"),
    path("registry/verify/", registry_views.verify_start, name="registry_verify"),
    path("registry/runs/<int:pk>/", registry_views.verify_run, name="registry_run"),
    path(
        "registry/runs/<int:pk>/status/",
        registry_views.verify_run_status,
        name="registry_run_status",
    ),
]
