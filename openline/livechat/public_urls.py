"""Public live chat endpoints: the widget loader and its iframe."""

from django.urls import path, re_path

from openline.accounts import avatars, profile_views
from openline.livechat import views

app_name = "livechat_public"
urlpatterns = [
    # Operators' pictures, shown to clients; the key is unguessable and changes on upload.
    re_path(rf"^avatars/(?P<key>{avatars.KEY_RE})\.webp$", profile_views.avatar, name="avatar"),
    path("<str:code>.js", views.loader, name="loader"),
    path("<str:code>/frame", views.frame, name="frame"),
    path("<str:code>/start", views.start, name="start"),
    path("<str:code>/receipt", views.receipt, name="receipt"),
]
