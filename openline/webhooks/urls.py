from django.urls import path

from openline.webhooks import views

app_name = "webhooks"

urlpatterns = [
    path("", views.endpoint_list, name="endpoints"),
    path("new/", views.endpoint_create, name="endpoint_create"),
    path("<int:pk>/", views.endpoint_detail, name="endpoint"),
    path("<int:pk>/edit/", views.endpoint_edit, name="endpoint_edit"),
    path("<int:pk>/rotate-secret/", views.endpoint_rotate, name="endpoint_rotate"),
    path("<int:pk>/toggle/", views.endpoint_toggle, name="endpoint_toggle"),
    path("<int:pk>/delete/", views.endpoint_delete, name="endpoint_delete"),
    path("deliveries/<int:pk>/resend/", views.delivery_resend, name="delivery_resend"),
]
