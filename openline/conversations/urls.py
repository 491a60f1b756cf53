from django.urls import path

from openline.conversations import canned_views, messenger_views, views

app_name = "conversations"
urlpatterns = [
    path("inbox/", views.inbox, name="inbox"),
    path("inbox/<int:conversation_id>/", views.conversation, name="conversation"),
    path("inbox/<int:conversation_id>/close/", views.close, name="close"),
    path("inbox/<int:conversation_id>/transfer/", views.transfer, name="transfer"),
    path("inbox/<int:conversation_id>/notes/", views.add_note, name="add_note"),
    path(
        "inbox/<int:conversation_id>/messages/<int:message_id>/resend/",
        messenger_views.resend,
        name="resend",
    ),
    path(
        "inbox/<int:conversation_id>/withdrawal/",
        messenger_views.record_withdrawal,
        name="record_withdrawal",
    ),
    path("canned-replies/", canned_views.canned_list, name="canned_replies"),
    path("canned-replies/new/", canned_views.canned_create, name="canned_create"),
    path("canned-replies/mine.json", canned_views.canned_json, name="canned_json"),
    path("canned-replies/<int:pk>/", canned_views.canned_edit, name="canned_edit"),
    path("canned-replies/<int:pk>/delete/", canned_views.canned_delete, name="canned_delete"),
]
