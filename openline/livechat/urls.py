"""Console pages of the live chat connector.

``openline/urls.py`` mounts these in the "conversations" URL namespace, where the page was
first published: templates, tests and bookmarks name it "conversations:livechat_settings".
"""

from django.urls import path

from openline.livechat import settings_views

urlpatterns = [
    # Lives under the contact center's URL space; the view is about the live chat connector.
    path(
        "contact-center/live-chat/<int:pk>/",
        settings_views.livechat_settings,
        name="livechat_settings",
    ),
]
