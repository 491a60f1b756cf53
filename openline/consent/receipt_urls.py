"""Public (no login) receipt pages under /registry/."""

from django.urls import path

from openline.consent import receipt_views

app_name = "receipts"
urlpatterns = [
    path("receipt-check", receipt_views.receipt_check_page, name="check"),
]
