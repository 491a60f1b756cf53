from django.http import HttpRequest

from openline.accounts.models import Role


def console(request: HttpRequest) -> dict:
    """Expose the acting user's role to templates for navigation."""
    user = getattr(request, "user", None)
    role = getattr(user, "role", None) if user is not None and user.is_authenticated else None
    return {
        "role": role,
        "is_administrator": role == Role.ADMINISTRATOR,
        "is_operator": role == Role.OPERATOR,
        "is_auditor": role == Role.AUDITOR,
        "Role": Role,
    }
