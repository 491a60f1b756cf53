from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from openline.accounts import services
from openline.accounts.forms import LoginForm, StaffUserCreateForm, StaffUserEditForm
from openline.accounts.middleware import mark_active
from openline.accounts.models import Role, User
from openline.accounts.permissions import READ, StaffRequest, role_required


class LoginView(auth_views.LoginView):
    template_name = "accounts/login.html"
    redirect_authenticated_user = True
    form_class = LoginForm

    def form_invalid(self, form: LoginForm) -> HttpResponse:  # type: ignore[override]
        response = super().form_invalid(form)
        if form.throttled is not None:
            response.status_code = 429
            response["Retry-After"] = str(form.throttled.retry_after)
        elif form.busy:
            response.status_code = 503
            response["Retry-After"] = "5"
        return response

    def form_valid(self, form: LoginForm) -> HttpResponse:  # type: ignore[override]
        response = super().form_valid(form)
        mark_active(self.request)
        if form.get_user().must_change_password:
            return redirect("accounts:password_change")
        return response


class LogoutView(auth_views.LogoutView):
    pass


@role_required(Role.ADMINISTRATOR, methods=READ)
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
