from django.urls import path

from openline.crm import awaiting_views, views

app_name = "crm"
urlpatterns = [
    path("items/", views.item_list, name="items"),
    path("awaiting/", awaiting_views.awaiting_list, name="awaiting"),
    path("awaiting/delete/", awaiting_views.awaiting_delete, name="awaiting_delete"),
    path("items/<int:pk>/", views.item_detail, name="item"),
    path("items/<int:pk>/edit/", views.item_edit, name="item_edit"),
    path("items/<int:pk>/convert/", views.item_convert, name="item_convert"),
    path("items/<int:pk>/notes/", views.item_note, name="item_note"),
    path("items/<int:pk>/delete/", views.item_delete, name="item_delete"),
    path("items/<int:pk>/export/", views.item_export, name="item_export"),
    path(
        "conversations/<int:conversation_id>/save/",
        views.save_conversation,
        name="save_conversation",
    ),
]
