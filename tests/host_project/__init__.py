"""A minimal Django project that mounts Partwise as README's "Add Partwise to your Django project"
says: its own settings, a custom user model, its URLs with the app under /files/, and a model
that refers to finished uploads. tests/unit/test_host_project.py drives it in subprocesses."""
