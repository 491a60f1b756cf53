"""Receivers that push access changes to open console websockets (see ``realtime``).

They hang on Django's own signals so every path is covered: the console's logout and user
pages, ``set_password`` + ``save`` in any view, ``manage.py changepassword``, the admin.
"""

from __future__ import annotations

from openline.accounts import realtime

WATCHED = ("password", "is_active", "role", "must_change_password")


def on_logged_out(sender, request, user, **kwargs) -> None:
    """Close the websockets of the session that logged out."""
    session = getattr(request, "session", None)
    key = getattr(session, "session_key", None)
    if key:
        realtime.disconnect_session_sockets(key, reason="logged_out")


def remember_access(sender, instance, raw=False, update_fields=None, **kwargs) -> None:
    """Read the stored password, active flag and role before a user is saved."""
    if raw or instance.pk is None:
        return
    if update_fields is not None and not set(update_fields) & set(WATCHED):
        return  # e.g. last_login on every sign-in: nothing that changes access
    before = sender.objects.filter(pk=instance.pk).values_list(*WATCHED).first()
    instance._access_before = before


def push_access_change(sender, instance, created=False, raw=False, **kwargs) -> None:
    """Close the user's websockets when the save changed what they may do."""
    before = instance.__dict__.pop("_access_before", None)
    if created or raw or before is None:
        return
    password, is_active, role, must_change = before
    if is_active and not instance.is_active:
        realtime.disconnect_user_sockets(
            instance.pk, reason="deactivated", code=realtime.CLOSE_FORBIDDEN
        )
    elif password != instance.password:
        realtime.disconnect_user_sockets(instance.pk, reason="password_changed")
    elif instance.must_change_password and not must_change:
        # An administrator's reset (or the flag alone): nothing but the password form now.
        realtime.disconnect_user_sockets(instance.pk, reason="must_change_password")
    elif role != instance.role:
        # The socket reconnects and is judged under the new role.
        realtime.disconnect_user_sockets(instance.pk, reason="role_changed")


def on_user_deleted(sender, instance, **kwargs) -> None:
    """Close the websockets of a removed user."""
    realtime.disconnect_user_sockets(instance.pk, reason="removed", code=realtime.CLOSE_FORBIDDEN)
