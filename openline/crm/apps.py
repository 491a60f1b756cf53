from django.apps import AppConfig


class CrmConfig(AppConfig):
    name = "openline.crm"
    label = "crm"

    def ready(self) -> None:
        # The conversations app shows CRM names without importing the CRM (it sits below it).
        from openline.conversations import naming
        from openline.crm import naming as crm_naming

        naming.register(resolver=crm_naming.resolve, searcher=crm_naming.search)
