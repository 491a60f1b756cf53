"""Console URL patterns; ``openline/urls.py`` mounts them under their historical namespaces.

``home_patterns`` go under ``core`` (``core:home``) and ``consent_patterns`` join the
registry's own patterns under ``consent``: the URL names did not change when the pages moved.
"""

from django.urls import path

from openline.console import consent_views, record_views, transcript_views, views

home_patterns = [
    path("", views.home, name="home"),
]

consent_patterns = [
    path("consents/new/", consent_views.agreement_create, name="agreement_create"),
    path("consents/history/", consent_views.audit_list, name="audit"),
    path("obtained-consents/", record_views.record_list, name="records"),
    path("obtained-consents/export/", record_views.record_export, name="records_export"),
    path("transcripts/<int:conversation_id>/", transcript_views.transcript, name="transcript"),
]
