from django.apps import AppConfig


class CommerceConfig(AppConfig):
    name = "commerce"

    def ready(self) -> None:
        from retention.services import TENANT_CREATED_HOOKS

        if _create_commerce_settings not in TENANT_CREATED_HOOKS:
            TENANT_CREATED_HOOKS.append(_create_commerce_settings)


def _create_commerce_settings(tenant) -> None:
    """Every new tenant gets its CommerceSettings row (defaults)."""
    from commerce.services.orders import commerce_settings

    commerce_settings(tenant)
