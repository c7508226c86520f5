from django.apps import AppConfig


class MessagingConfig(AppConfig):
    name = "messaging"

    def ready(self) -> None:
        from retention.services import TENANT_CREATED_HOOKS

        if _create_messaging_settings not in TENANT_CREATED_HOOKS:
            TENANT_CREATED_HOOKS.append(_create_messaging_settings)


def _create_messaging_settings(tenant) -> None:
    """Every new tenant gets its MessagingSettings row (defaults)."""
    from messaging.services.outbox import messaging_settings

    messaging_settings(tenant)
