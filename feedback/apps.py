from django.apps import AppConfig


class FeedbackConfig(AppConfig):
    name = "feedback"

    def ready(self) -> None:
        from feedback import callback_hooks, survey_hooks

        survey_hooks.register()
        callback_hooks.register()
