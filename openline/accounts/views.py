from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from openline.accounts import services
from openline.accounts.forms import StaffUserCreateForm, StaffUserEditForm
from openline.accounts.models import Role, User
from openline.accounts.permissions import StaffRequest, role_required


class LoginView(auth_views.LoginView):
    template_name = "accounts/login.html"
    redirect_authenticated_user = True


class LogoutView(auth_views.LogoutView):
    pass


@role_required(Role.ADMINISTRATOR)
def user_list(request: StaffRequest) -> HttpResponse:
    users = User.objects.order_by("role", "username")
    return render(request, "accounts/user_list.html", {"users": users, "section": "users"})


@role_required(Role.ADMINISTRATOR)
def user_create(request: StaffRequest) -> HttpResponse:
    form = StaffUserCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = services.create_staff_user(**form.cleaned_data, validate=False)
        messages.success(request, f"User {user.username} created.")
        return redirect("accounts:users")
    return render(
        request, "accounts/user_form.html", {"form": form, "section": "users", "creating": True}
    )


@role_required(Role.ADMINISTRATOR)
def user_edit(request: StaffRequest, pk: int) -> HttpResponse:
    user = get_object_or_404(User, pk=pk)
    initial = {
        "display_name": user.display_name,
        "email": user.email,
        "role": user.role,
        "is_active": user.is_active,
    }
    form = StaffUserEditForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        if user == request.user and (
            form.cleaned_data["role"] != Role.ADMINISTRATOR or not form.cleaned_data["is_active"]
        ):
            form.add_error("role", "You cannot remove your own administrator access.")
        else:
            services.update_staff_user(user=user, **form.cleaned_data)
            messages.success(request, f"User {user.username} saved.")
            return redirect("accounts:users")
    return render(
        request, "accounts/user_form.html", {"form": form, "section": "users", "subject": user}
    )
