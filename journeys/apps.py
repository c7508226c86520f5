from django.apps import AppConfig


class JourneysConfig(AppConfig):
    name = "journeys"

    def ready(self) -> None:
        from journeys.services.setup import on_tenant_created
        from retention.services import TENANT_CREATED_HOOKS

        # Every new store starts with the shipped journeys, active.
        if on_tenant_created not in TENANT_CREATED_HOOKS:
            TENANT_CREATED_HOOKS.append(on_tenant_created)
