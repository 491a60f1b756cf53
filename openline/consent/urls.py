from django.urls import path

from openline.consent import views

app_name = "consent"
urlpatterns = [
    path("consents/", views.agreement_list, name="agreements"),
    path("consents/new/", views.agreement_create, name="agreement_create"),
    path("obtained-consents/", views.record_list, name="records"),
]
