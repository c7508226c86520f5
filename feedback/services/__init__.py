"""Feedback services: settings, surveys and the callback queue."""

from feedback.services.callbacks import callback_create
from feedback.services.settings import feedback_settings
from feedback.services.surveys import (
    SurveyAnswered,
    SurveyExpired,
    customer_has_unsubscribed,
    feedback_thresholds_validate,
    survey_answer,
    survey_callback_queued,
    survey_classify,
    survey_invitation_for_token,
    survey_invitation_message_set,
    survey_invite,
    survey_open_sms_invitation,
    survey_response_of,
    survey_retry_prompt_claim,
    survey_url,
)

__all__ = [
    "SurveyAnswered",
    "SurveyExpired",
    "callback_create",
    "customer_has_unsubscribed",
    "feedback_settings",
    "feedback_thresholds_validate",
    "survey_answer",
    "survey_callback_queued",
    "survey_classify",
    "survey_invitation_for_token",
    "survey_invitation_message_set",
    "survey_invite",
    "survey_open_sms_invitation",
    "survey_response_of",
    "survey_retry_prompt_claim",
    "survey_url",
]
