from tests.s3server import real_s3, seaweedfs  # noqa: F401  (fixtures)
