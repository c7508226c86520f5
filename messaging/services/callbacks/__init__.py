"""Provider callbacks: SendGrid events, Twilio status callbacks and inbound SMS.

Every event is stored first as a ``ProviderEvent`` keyed by the provider's event
id (a replay changes nothing), then applied: status moves through
``message_advance`` (forward only), suppressions, consent and touchpoints.

- :mod:`.store`: store and apply, the sweeper's ``provider_events_apply_pending``
- :mod:`.sendgrid_events`: the SendGrid event mapping
- :mod:`.twilio_sms`: Twilio status callbacks, inbound SMS keywords and reply hooks
"""

from messaging.services.callbacks.sendgrid_events import sendgrid_events_receive
from messaging.services.callbacks.store import (
    events_apply,
    events_store,
    provider_events_apply_pending,
)
from messaging.services.callbacks.twilio_sms import (
    INBOUND_SMS_HOOKS,
    InboundSms,
    dangerously_message_by_twilio_sid,
    status_callback_url,
    tenant_for_sms_number,
    twilio_inbound_receive,
    twilio_status_receive,
)

__all__ = [
    "INBOUND_SMS_HOOKS",
    "InboundSms",
    "dangerously_message_by_twilio_sid",
    "events_apply",
    "events_store",
    "provider_events_apply_pending",
    "sendgrid_events_receive",
    "status_callback_url",
    "tenant_for_sms_number",
    "twilio_inbound_receive",
    "twilio_status_receive",
]
