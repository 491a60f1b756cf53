from django.urls import path

from openline.conversations import messenger_views, views

app_name = "conversations"
urlpatterns = [
    path("inbox/", views.inbox, name="inbox"),
    path("inbox/<int:conversation_id>/", views.conversation, name="conversation"),
    path("inbox/<int:conversation_id>/close/", views.close, name="close"),
    path("inbox/<int:conversation_id>/transfer/", views.transfer, name="transfer"),
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
]
