"""The JS client itself in real Chromium, beside the page: what Node's tests cannot show.

Node has no Web Workers, so the worker pool that hashes parts (frontend/client/hashworkers.js)
runs only here.
"""

from __future__ import annotations

import pytest

from tests.support.checksums import MiB, sha256_b64, sha256_of_file, sha256_of_stored
from tests.support.files import write_random
from uploads.models import Upload

pytestmark = pytest.mark.timeout(180)

PART = 5 * MiB

UPLOAD_PICKED_FILE = """async ([options]) => {
  const { upload } = await import('/static/partwise/client.js');
  const file = document.getElementById('client-probe').files[0];
  performance.clearMeasures();
  const endpoint = document.getElementById('app').dataset.endpoint;
  const done = await upload(file, { endpoint, resume: false, ...options }).promise;
  const names = performance.getEntriesByType('measure').map((entry) => entry.name);
  const count = (name) => names.filter((seen) => seen === name).length;
  return {
    status: done.status, id: done.id,
    reads: count('partwise:read'), hashes: count('partwise:hash'),
  };
}"""


def pick(page, path) -> None:
    page.evaluate(
        "() => { const input = document.createElement('input'); input.type = 'file';"
        " input.id = 'client-probe'; input.hidden = true; document.body.append(input); }"
    )
    page.set_input_files("#client-probe", str(path))


@pytest.mark.parametrize(
    ("options", "reads_on_the_page"),
    [({}, 0), ({"hashWorkers": 0}, 4)],
    ids=["in-workers-by-default", "on-the-page-with-hashWorkers-0"],
)
def test_parts_are_hashed_in_web_workers_so_no_part_is_read_into_the_page(
    open_session, s3_for_browser, tmp_path, options, reads_on_the_page
):
    _, page = open_session()
    path = write_random(tmp_path / "hashed.bin", 3 * PART + 123)
    pick(page, path)

    result = page.evaluate(UPLOAD_PICKED_FILE, [{"partSize": PART, **options}])

    assert result["status"] == "completed"
    assert result["hashes"] == 4  # each part hashed once
    # A worker reads its own Blob slice: the page never holds a part's bytes ("read" spans are
    # the page reading a part into memory).
    assert result["reads"] == reads_on_the_page
    upload = Upload.objects.get(pk=result["id"])
    data = path.read_bytes()
    signed = dict(upload.parts.values_list("number", "checksum"))
    assert signed == {
        number: sha256_b64(data[(number - 1) * PART : number * PART]) for number in range(1, 5)
    }  # what the workers computed is what S3 verified
    assert sha256_of_stored(s3_for_browser, upload.key) == sha256_of_file(path)
