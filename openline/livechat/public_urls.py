"""Public live chat endpoints: the widget loader and its iframe."""

from django.urls import path

from openline.livechat import views

app_name = "livechat_public"
urlpatterns = [
    path("<str:code>.js", views.loader, name="loader"),
    path("<str:code>/frame", views.frame, name="frame"),
    path("<str:code>/start", views.start, name="start"),
    path("<str:code>/receipt", views.receipt, name="receipt"),
]
