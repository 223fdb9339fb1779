"""The store probe finds what each kind of store verifies, and the server follows it.

The probe (uploads/storage/probe.py) runs here against in-memory fakes of the stores of
README's table (tests/support/fake_stores.py); tests/integration/test_store_probe.py runs it
against SeaweedFS and Ceph RGW.
"""

import pytest
from django.core.management import call_command

from tests.support.fake_stores import STORES, FakeStore
from uploads import integrity, selectors, services
from uploads.checks import check_store_profile
from uploads.integrity import CRC32C, MD5, SHA256, StoreProfile, choose_algorithm, integrity_of
from uploads.models import StoreProfile as StoreProfileRow
from uploads.storage.probe import probe_store

EXPECTED = {
    "aws": StoreProfile(frozenset({SHA256, CRC32C, MD5}), True, False, True),
    "r2": StoreProfile(frozenset({CRC32C, MD5}), True, True, True),
    "b2": StoreProfile(frozenset({MD5}), True, False, True),
    "ceph-rgw-16": StoreProfile(frozenset({MD5}), True, False, True),
    "gcs-xml": StoreProfile(frozenset({MD5}), True, False, True),
    "verifies-nothing": StoreProfile(frozenset(), True, False, False),
    "ignores-length": StoreProfile(frozenset({SHA256, CRC32C, MD5}), False, False, True),
}


def probe(name: str):
    store = FakeStore(STORES[name])
    return store, probe_store(store, key_prefix="uploads/", send=store.send)


@pytest.mark.parametrize("name", sorted(STORES))
def test_the_probe_finds_what_each_store_verifies(name):
    _, result = probe(name)
    assert result.profile == EXPECTED[name]


@pytest.mark.parametrize("name", sorted(STORES))
def test_the_probe_leaves_nothing_behind(name):
    store, _ = probe(name)
    assert store.uploads == {}
    assert store.objects == {}


def test_a_store_that_accepts_a_wrong_sha256_is_not_taken_as_verifying_it():
    _, result = probe("ceph-rgw-16")
    steps = {step.name: step for step in result.steps}
    wrong = steps["SHA256: a part with a wrong digest"]
    assert (wrong.status, wrong.passed) == (200, False)
    md5 = steps["MD5: a part with a wrong digest"]
    assert (md5.status, md5.code, md5.passed) == (400, "BadDigest", True)


def test_r2s_501_to_sha256_headers_means_sha256_cannot_be_used_there():
    _, result = probe("r2")
    steps = {step.name: step for step in result.steps}
    assert steps["SHA256: a part with its digest"].status == 501
    assert steps["SHA256: a part with its digest"].code == "NotImplemented"
    assert SHA256 not in result.profile.verifies


# --- the server chooses, from the profile -------------------------------------------------------
@pytest.mark.parametrize(
    ("store", "asked", "chosen", "caught_by"),
    [
        ("aws", SHA256, SHA256, "store"),
        ("aws", CRC32C, CRC32C, "store"),
        ("r2", SHA256, CRC32C, "store"),
        ("b2", SHA256, MD5, "store"),
        ("ceph-rgw-16", SHA256, MD5, "store"),
        ("ceph-rgw-16", "", "", "none"),  # a client that asks for none (Uppy) gets none
        ("verifies-nothing", SHA256, SHA256, "none"),
    ],
)
def test_a_client_asking_for_a_digest_gets_one_the_store_verifies(store, asked, chosen, caught_by):
    profile = EXPECTED[store]
    assert choose_algorithm(asked, profile=profile) == chosen
    assert integrity_of(chosen, profile=profile) == caught_by


def test_a_store_whose_etag_is_the_md5_and_verifies_nothing_gets_md5_checked_at_completion():
    profile = StoreProfile(frozenset(), True, False, True)
    assert choose_algorithm(SHA256, profile=profile) == MD5
    assert integrity_of(MD5, profile=profile) == "etag"


@pytest.mark.parametrize(
    ("setting", "chosen"), [("sha256", SHA256), ("crc32c", CRC32C), ("md5", MD5), ("none", "")]
)
def test_a_forced_setting_wins_over_the_profile_and_the_client(setting, chosen):
    assert choose_algorithm(SHA256, profile=EXPECTED["r2"], setting=setting) == chosen
    assert choose_algorithm("", profile=None, setting=setting) == chosen


def test_a_store_never_probed_gets_what_the_client_asked():
    assert choose_algorithm(SHA256, profile=None) == SHA256
    assert integrity_of(SHA256, profile=None) == "store"


# --- recorded, read back, and checked ------------------------------------------------------------
@pytest.fixture
def probed(db, storage):
    """Record a probe of `name`'s fake as the configured store's profile."""

    def record(name: str) -> StoreProfileRow:
        _, result = probe(name)
        return services.record_store_profile(result, storage=storage)

    return record


def test_a_recorded_probe_is_the_profile_new_uploads_read(probed, storage):
    assert selectors.store_profile(storage) is None
    probed("ceph-rgw-16")
    assert selectors.store_profile(storage) == EXPECTED["ceph-rgw-16"]
    probed("aws")  # probing again replaces it, and the cached copy with it
    assert selectors.store_profile(storage) == EXPECTED["aws"]
    assert StoreProfileRow.objects.count() == 1


def test_check_warns_when_the_store_verifies_nothing(probed):
    probed("verifies-nothing")
    assert [message.id for message in check_store_profile()] == ["uploads.W004"]


def test_check_refuses_a_forced_digest_the_store_does_not_verify(probed, settings):
    probed("ceph-rgw-16")
    settings.UPLOADS_PART_INTEGRITY = "sha256"
    (error,) = check_store_profile()
    assert error.id == "uploads.E005"
    assert "MD5" in error.msg
    settings.UPLOADS_PART_INTEGRITY = "md5"
    assert check_store_profile() == []


def test_check_is_silent_for_a_store_that_verifies_and_one_never_probed(probed):
    assert check_store_profile() == []
    probed("aws")
    assert check_store_profile() == []


def test_an_unknown_part_integrity_setting_is_an_error(settings):
    from uploads.checks import check_upload_settings

    settings.UPLOADS_PART_INTEGRITY = "sha1"
    assert "uploads.E004" in [message.id for message in check_upload_settings()]


def test_the_integrity_module_names_every_setting_value():
    assert set(integrity.SETTING_CHOICES) == {"auto", "sha256", "crc32c", "md5", "none"}


def test_probe_storage_prints_what_it_found(db, storage, monkeypatch, capsys):
    store = FakeStore(STORES["ceph-rgw-16"])
    monkeypatch.setattr(
        "uploads.services.store.probe_store",
        lambda storage, key_prefix, send: probe_store(
            store, key_prefix=key_prefix, send=store.send
        ),
    )
    call_command("probe_storage")
    out = capsys.readouterr().out
    assert "store profile: verifies: MD5" in out
    assert "-- SHA256: a part with a wrong digest: 200" in out
    assert selectors.store_profile(storage) == EXPECTED["ceph-rgw-16"]
