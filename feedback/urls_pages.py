"""Hosted pages for shoppers: the survey at ``/s/<token>/``."""

from django.urls import path

from feedback import views_survey

urlpatterns = [
    path("s/<str:token>/", views_survey.survey_page, name="survey-page"),
    path("s/<str:token>/thanks/", views_survey.survey_thanks, name="survey-thanks"),
]
