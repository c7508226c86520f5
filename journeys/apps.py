from django.apps import AppConfig


class JourneysConfig(AppConfig):
    name = "journeys"

    def ready(self) -> None:
        from commerce.services.customers import CUSTOMER_MERGE_HOOKS
        from journeys.hooks import on_customer_merged
        from journeys.services.setup import on_tenant_created
        from retention.services import TENANT_CREATED_HOOKS

        # A new store starts with the shipped journeys, active; a merged customer's
        # journeys carry on under the survivor (see journeys.hooks).
        for hooks, hook in (
            (TENANT_CREATED_HOOKS, on_tenant_created),
            (CUSTOMER_MERGE_HOOKS, on_customer_merged),
        ):
            if hook not in hooks:
                hooks.append(hook)
