"""Provider callbacks under ``/hooks/`` (SendGrid events, Twilio status and inbound SMS).

Included before commerce's ``/hooks/<tenant-slug>/`` routes, so these fixed
paths are matched first.
"""

from django.urls import path

from messaging import callbacks_views

urlpatterns = [
    path("sendgrid/events/", callbacks_views.sendgrid_events, name="hooks-sendgrid-events"),
    path("twilio/status/", callbacks_views.twilio_status, name="hooks-twilio-status"),
    path("twilio/inbound/", callbacks_views.twilio_inbound, name="hooks-twilio-inbound"),
]
