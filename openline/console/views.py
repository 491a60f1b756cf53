"""The console's home: each role lands where its work is."""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import redirect

from openline.accounts.models import Role
from openline.accounts.permissions import READ, StaffRequest, role_required


@role_required(Role.ADMINISTRATOR, Role.OPERATOR, Role.AUDITOR, methods=READ)
def home(request: StaffRequest) -> HttpResponse:
    """Send each role to where its work is."""
    if request.user.role == Role.AUDITOR:
        return redirect("consent:records")
    return redirect("conversations:inbox")
