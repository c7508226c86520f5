"""Writes of the insights app: settings and targets (here), the rollups
(``insights.services.rollups``), the weekly summary (``insights.services.summary``)."""
