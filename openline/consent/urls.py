from django.urls import path

from openline.consent import registry_views, views

app_name = "consent"
urlpatterns = [
    path("consents/", views.agreement_list, name="agreements"),
    path("consents/new/", views.agreement_create, name="agreement_create"),
    path("consents/preview/", views.agreement_preview, name="agreement_preview"),
    path("consents/history/", views.audit_list, name="audit"),
    path("consents/<int:pk>/", views.agreement_edit, name="agreement_edit"),
    path("consents/<int:pk>/languages/", views.agreement_languages, name="agreement_languages"),
    path("consents/<int:pk>/versions/", views.agreement_versions, name="agreement_versions"),
    path("consents/<int:pk>/versions/<int:number>/", views.version_detail, name="version_detail"),
    path("consents/<int:pk>/versions/<int:number>/diff/", views.version_diff, name="version_diff"),
    path("consents/<int:pk>/active/", views.agreement_set_active, name="agreement_set_active"),
    path("obtained-consents/", views.record_list, name="records"),
    path("obtained-consents/export/", views.record_export, name="records_export"),
    path("obtained-consents/<uuid:record_uuid>/", views.record_detail, name="record_detail"),
    path(
        "obtained-consents/<uuid:record_uuid>/receipt/", views.record_receipt, name="record_receipt"
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
