"""Writes for messaging. Import from the topic modules:

- ``messaging.services.outbox``: queue a message, move its status forward,
  suppressions, the tenant's messaging settings
- ``messaging.services.send``: claim, check and send batches; the sweeper
- ``messaging.services.templates``: validate and render templates
- ``messaging.services.callbacks``: provider callbacks (SendGrid, Twilio)
- ``messaging.services.preferences``: the shopper's preferences page
"""
