"""The store probe against the two real stores of the suite, through `setup_storage`.

SeaweedFS verifies every part digest; Debian's radosgw 16 accepts any x-amz-checksum-* and
verifies only Content-MD5 (tests/integration/test_ceph_rgw.py documents it step by step).
"""

from io import StringIO

import pytest
from django.core.management import call_command

from tests.support.ceph_rgw import CephRGW
from uploads import selectors
from uploads.conf import upload_settings
from uploads.integrity import StoreProfile


@pytest.mark.django_db
def test_setup_storage_probes_what_the_store_verifies_and_records_it(real_s3, s3_server):
    out = StringIO()

    call_command("setup_storage", stdout=out)

    profile = selectors.store_profile(real_s3)
    row = selectors.store_profile_row(real_s3)
    assert row is not None
    assert row.findings, "every probe step is kept"
    if isinstance(s3_server, CephRGW):
        # Radosgw 16 accepts any x-amz-checksum-* (README's store table), verifies Content-MD5.
        assert profile == StoreProfile(frozenset({"MD5"}), True, False, True)
        assert "-- SHA256: a part with a wrong digest: 200" in out.getvalue()
    else:
        assert profile == StoreProfile(frozenset({"SHA256", "CRC32C", "MD5"}), True, False, True)
    assert "store profile: verifies:" in out.getvalue()
    # The probe leaves nothing behind in the bucket.
    assert real_s3.list_multipart_uploads(upload_settings().key_prefix) == []
    listed = real_s3.client.list_objects_v2(Bucket=real_s3.bucket).get("Contents", [])
    assert listed == []
