from django.urls import path

from openline.accounts import password_views, profile_views, token_views, views

app_name = "accounts"
urlpatterns = [
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("console/users/", views.user_list, name="users"),
    path("console/users/new/", views.user_create, name="user_create"),
    path("console/users/<int:pk>/", views.user_edit, name="user_edit"),
    path("console/password/", password_views.password_change, name="password_change"),
    path("console/profile/", profile_views.profile, name="profile"),
    path("console/api-tokens/", token_views.token_list, name="tokens"),
    path("console/api-tokens/revoke/", token_views.token_revoke, name="token_revoke"),
    path(
        "console/users/<int:pk>/reset-password/",
        password_views.user_reset_password,
        name="user_reset_password",
    ),
]
