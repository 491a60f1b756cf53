from django.apps import AppConfig


class ConversationsConfig(AppConfig):
    name = "openline.conversations"
    label = "conversations"
    verbose_name = "Conversations"
