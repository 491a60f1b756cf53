from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "openline.accounts"
    label = "accounts"
    verbose_name = "Staff accounts"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_out
        from django.db.models.signals import post_delete, post_save, pre_save

        from openline.accounts import signals
        from openline.accounts.models import User

        # Access changes close the user's open console websockets (accounts/realtime.py).
        user_logged_out.connect(signals.on_logged_out, dispatch_uid="accounts-ws-logout")
        pre_save.connect(signals.remember_access, sender=User, dispatch_uid="accounts-ws-pre")
        post_save.connect(signals.push_access_change, sender=User, dispatch_uid="accounts-ws-post")
        post_delete.connect(signals.on_user_deleted, sender=User, dispatch_uid="accounts-ws-del")
