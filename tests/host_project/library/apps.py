from django.apps import AppConfig


class LibraryConfig(AppConfig):
    name = "tests.host_project.library"
    label = "library"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import receivers  # noqa: F401  (connects to upload_completed)
