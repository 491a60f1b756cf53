from django.urls import path

from openline.conversations import views

app_name = "conversations"
urlpatterns = [
    path("inbox/", views.inbox, name="inbox"),
    path("inbox/<int:conversation_id>/", views.conversation, name="conversation"),
    path("inbox/<int:conversation_id>/close/", views.close, name="close"),
    path("inbox/<int:conversation_id>/transfer/", views.transfer, name="transfer"),
    # Lives under the contact center's URL space; the view is about the live chat connector.
    path("contact-center/live-chat/<int:pk>/", views.livechat_settings, name="livechat_settings"),
]
