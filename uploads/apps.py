from django.apps import AppConfig


class UploadsConfig(AppConfig):
    name = "uploads"
    verbose_name = "Uploads"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the system checks, the storage's setting_changed hook and the tasks'
        # upload_completed receivers.
        from . import checks, storage, tasks  # noqa: F401
