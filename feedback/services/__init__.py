"""Feedback services: settings, surveys and the callback queue."""

from feedback.services.callbacks import callback_create
from feedback.services.settings import feedback_settings

__all__ = ["callback_create", "feedback_settings"]
