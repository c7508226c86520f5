"""Segment services: RFM and tiers (``rfm``), rule-segment memberships
(``memberships``) and rising-interest alerts (``alerts``)."""
