"""Public registry URLs (no login): signed checkpoints and the keys that verify them."""

from django.urls import path

from openline.consent import registry_views

app_name = "registry"
urlpatterns = [
    path("checkpoint", registry_views.checkpoint_latest, name="checkpoint"),
    path("checkpoints", registry_views.checkpoint_list, name="checkpoints"),
    path("jwks.json", registry_views.jwks, name="jwks"),
]
