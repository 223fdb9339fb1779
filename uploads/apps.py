from django.apps import AppConfig


class UploadsConfig(AppConfig):
    name = "uploads"
    verbose_name = "Uploads"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks, storage  # noqa: F401  (registers checks and the setting_changed hook)
