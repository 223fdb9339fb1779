"""The development app: what `make run` needs and production never uses.

`manage.py rundev` (management/commands/rundev.py) runs the whole stack in one terminal,
seaweedfs.py starts the embedded S3 server (SeaweedFS `weed mini`, from the `embedded` extra),
and embedded.py holds the embedded defaults that project/settings.py falls back on when an
environment variable is unset (where local state lives, dev-only S3 keys, a dev SECRET_KEY).
The domain app `uploads` never imports any of it.
"""
