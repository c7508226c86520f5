from django.apps import AppConfig


class ScoringConfig(AppConfig):
    name = "scoring"

    def ready(self) -> None:
        from scoring.hooks import register

        register()
        from scoring.rules import register_rules

        register_rules()
