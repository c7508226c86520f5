from django.apps import AppConfig


class MessagingConfig(AppConfig):
    name = "messaging"

    def ready(self) -> None:
        from commerce.services.customers import CUSTOMER_MERGE_HOOKS
        from retention.services import TENANT_CREATED_HOOKS

        if _create_messaging_settings not in TENANT_CREATED_HOOKS:
            TENANT_CREATED_HOOKS.append(_create_messaging_settings)
        if _move_messages not in CUSTOMER_MERGE_HOOKS:
            CUSTOMER_MERGE_HOOKS.append(_move_messages)


def _create_messaging_settings(tenant) -> None:
    """Every new tenant gets its MessagingSettings row (defaults)."""
    from messaging.services.outbox import messaging_settings

    messaging_settings(tenant)


def _move_messages(survivor, merged) -> dict[str, int]:
    """Inside the merge: the survivor's outbox history includes the merged
    customer's messages (and the cap counts them)."""
    from messaging.models import Message

    moved = (
        Message.objects.for_tenant(survivor.tenant_id)
        .filter(customer=merged)
        .update(customer=survivor)
    )
    return {"messages": moved}
