"""Writes for commerce. Import from the topic modules:

- ``commerce.services.customers``: identity resolution, profile, consent, merges
- ``commerce.services.orders``: orders, fulfilments, carts, returns
- ``commerce.services.touchpoints``: the customer timeline
"""
