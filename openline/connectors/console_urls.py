"""Console pages of the messenger connectors (administrators only)."""

from django.urls import path

from openline.connectors import views

app_name = "connector_pages"

urlpatterns = [
    path("<int:pk>/connectors/<slug:kind>/", views.connector_settings, name="settings"),
    path(
        "<int:pk>/connectors/<slug:kind>/disconnect/",
        views.connector_disconnect,
        name="disconnect",
    ),
]
