from django.urls import path

from openline.openchannels import views

app_name = "openchannels"
urlpatterns = [
    path("", views.contact_center, name="contact_center"),
    path("connectors/<str:kind>/", views.connector_channels, name="connector"),
    path("open-channels/new/", views.channel_create, name="create"),
    path("open-channels/<int:pk>/active/", views.channel_set_active, name="set_active"),
    path("open-channels/<int:pk>/", views.channel_configure, name="configure_default"),
    path("open-channels/<int:pk>/<str:tab>/", views.channel_configure, name="configure"),
]
