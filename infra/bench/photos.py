"""Photos at real size (REQUIREMENTS §6, §10): inspection time per photo, memory while inspecting a
108 MP photo and while zipping 200 x 20 MB, and `POST /trainings` latency with 25 and 200 photos.

Memory is each measured step's own process: a fresh `python` that reports its peak RSS
(`VmHWM`, which starts afresh at exec, unlike `ru_maxrss`, which a child inherits from its
parent) before and after the step, so the bench's own memory (and moto's, which holds the
objects) is not counted. `python -m infra.bench.photos` runs the in-process rows alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable

import requests

from infra.bench.table import Row, median, p95, render
from infra.local.photos_fixture import make_large_jpeg, make_photo
from infra.local.stack import LocalStack
from infra.local.tokens import issue_token

PHONE_SIDES = (4032, 3024)  # a 12 MP phone photo
INSPECT_ROUNDS = 8  # inspections of each distinct photo
ZIP_MEMBERS, ZIP_MEMBER_BYTES = 200, 20 * 1024 * 1024
RSS_GOAL_MB = 256
START_GOAL_SECONDS = 2.0


def _timed_inspections(photos: list[bytes], rounds: int) -> list[float]:
    from lorapin.domain.photo_inspection import inspect_photo

    seconds = []
    for _ in range(rounds):
        for n, data in enumerate(photos):
            started = time.perf_counter()
            inspect_photo(f"users/bench/uploads/{n:032x}.jpg", data, etag=str(n))
            seconds.append(time.perf_counter() - started)
    return seconds


def _colour_phone_jpeg(seed: int) -> bytes:
    return make_large_jpeg(*PHONE_SIDES, seed=seed, mode="RGB")


def _phone_heic(seed: int) -> bytes:
    """A 12 MP HEIC: the phone JPEG re-encoded by x265 (fastest preset; encoding is not measured)."""
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(_colour_phone_jpeg(seed)))
    buffer = io.BytesIO()
    image.save(buffer, format="HEIF", quality=80, enc_params={"preset": "ultrafast"})
    return buffer.getvalue()


def inspection_rows(*, photos: int = 3, rounds: int = INSPECT_ROUNDS) -> list[Row]:
    rows = []
    for label, make in (("12 MP JPEG", _colour_phone_jpeg), ("12 MP HEIC", _phone_heic)):
        samples = _timed_inspections([make(seed) for seed in range(photos)], rounds)
        rows.append(Row(f"photo inspection, {label} (4032x3024, p50 / p95, n={len(samples)}, in-process; HEIC "
                        "includes its full-size JPEG copy)" if "HEIC" in label else
                        f"photo inspection, {label} (4032x3024, p50 / p95, n={len(samples)}, in-process)",
                        f"{median(samples) * 1000:.0f} / {p95(samples) * 1000:.0f} ms"))
    return rows


_PEAK_RSS_KB = """
def peak_rss_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")
"""

_MEASURE_INSPECTION = _PEAK_RSS_KB + """
import sys, time
from lorapin.domain.photo_inspection import inspect_photo
data = open(sys.argv[1], "rb").read()
before = peak_rss_kb()
started = time.perf_counter()
found = inspect_photo("users/bench/uploads/" + "0" * 32 + ".jpg", data, etag="x")
elapsed = time.perf_counter() - started
after = peak_rss_kb()
print(before, after, elapsed, found.entry is not None)
"""


def inspection_memory_row(scratch: str) -> Row:
    """Peak RSS of a fresh process inspecting a 108 MP JPEG (12000x9000), above its import baseline."""
    path = os.path.join(scratch, "phone-108mp.jpg")
    with open(path, "wb") as file:
        file.write(make_large_jpeg(12000, 9000, mode="RGB"))
    done = subprocess.run([sys.executable, "-c", _MEASURE_INSPECTION, path], capture_output=True, text=True,
                          check=True)
    before, after, elapsed, usable = done.stdout.split()
    peak_mb, growth_mb = int(after) / 1024, (int(after) - int(before)) / 1024
    refused = "" if usable == "True" else " REFUSED"
    return Row("inspecting a 108 MP JPEG (12000x9000, colour) in a fresh process: time; peak RSS (growth)",
               f"{float(elapsed):.2f} s; {peak_mb:.0f} MB ({growth_mb:+.0f} MB){refused}",
               target=f"< 1 s, < {RSS_GOAL_MB} MB", ok=float(elapsed) < 1.0 and peak_mb < RSS_GOAL_MB)


_MEASURE_ZIP = _PEAK_RSS_KB + """
import json, sys
import boto3
from botocore.config import Config
from lorapin.adapters.media import MediaStore, ZipMember
endpoint, bucket, source, etag, count = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
# moto assembles a completed multipart upload in memory: minutes for 4 GB, so no read timeout and no retry
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                  aws_secret_access_key="testing", config=Config(read_timeout=1800, retries={"max_attempts": 1}))
store = MediaStore(s3, bucket)
before = peak_rss_kb()
size = store.write_zip(sys.argv[6], [ZipMember(f"{n:03d}.jpg", source, etag) for n in range(count)])
after = peak_rss_kb()
print(json.dumps({"before_kb": before, "after_kb": after, "zip_bytes": size}))
"""


def zip_memory_row(stack: LocalStack, *, members: int = ZIP_MEMBERS) -> Row:
    """Peak RSS of the submitter's zip step for `members` x 20 MB, in a fresh process. The members
    are one 20 MB object read `members` times: every read is a streamed GetObject of 20 MB, exactly as
    with distinct photos, while moto keeps one source object in memory instead of 200."""
    s3, bucket = stack.aws.client("s3"), stack.aws.names["MediaBucket"]
    source = f"users/bench-zip/uploads/{uuid.uuid4().hex}.jpg"
    target = f"users/bench-zip/trainings/{uuid.uuid4().hex}.zip"
    etag = s3.put_object(Bucket=bucket, Key=source, Body=os.urandom(ZIP_MEMBER_BYTES),
                         ContentType="image/jpeg")["ETag"]
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", _MEASURE_ZIP, str(stack.aws.endpoint_url), bucket, source, etag,
                           str(members), target], capture_output=True, text=True, check=False,
                          env={**os.environ, "AWS_ENDPOINT_URL": ""})
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        return Row(f"zipping {members} x 20 MB photos into the training zip", "failed: "
                   + (done.stderr.strip().splitlines() or ["no output"])[-1][:200], ok=False)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    s3.delete_object(Bucket=bucket, Key=target)
    s3.delete_object(Bucket=bucket, Key=source)
    peak_mb, growth_mb = result["after_kb"] / 1024, (result["after_kb"] - result["before_kb"]) / 1024
    return Row(f"zipping {members} x 20 MB photos into the training zip (S3 multipart, fresh process): peak RSS "
               f"(growth); zip size; time",
               f"{peak_mb:.0f} MB ({growth_mb:+.0f} MB); {result['zip_bytes'] / 1e9:.2f} GB; {elapsed:.0f} s",
               target=f"≤ {RSS_GOAL_MB} MB", ok=peak_mb <= RSS_GOAL_MB)


def start_latency_rows(stack: LocalStack, progress: Callable[[str], None], *,
                       sizes: tuple[tuple[int, int], ...] = ((25, 5), (200, 3))) -> list[Row]:
    """`POST /trainings` through the local HTTP API for users whose photos are all inspected (the
    usual case: photos are inspected as they arrive). Photos are 1024 px JPEGs: the start reads
    inspections, never bytes, so their size does not change what is timed."""
    s3, bucket = stack.aws.client("s3"), stack.aws.names["MediaBucket"]
    rows = []
    for photos, users in sizes:
        progress(f"POST /trainings with {photos} photos: uploading for {users} users")
        keys: dict[str, list[str]] = {}
        for n in range(users):
            user = f"bench-start-{photos}-{n}-{uuid.uuid4().hex[:6]}"
            keys[user] = []
            for seed in range(photos):
                key = f"users/{user}/uploads/{uuid.uuid4().hex}.jpg"
                s3.put_object(Bucket=bucket, Key=key, Body=make_photo(n * 1000 + seed), ContentType="image/jpeg")
                keys[user].append(key)
        stack.dispatcher.wait_drained(timeout=900)
        seconds, answers = [], []
        for user, user_keys in keys.items():
            started = time.perf_counter()
            response = requests.post(f"{stack.api.url}/trainings", timeout=60,
                                     headers={"authorization": f"Bearer {issue_token(user)}"},
                                     json={"image_keys": user_keys, "trigger_word": "ZQXPERSON"})
            seconds.append(time.perf_counter() - started)
            answers.append(response.status_code)
        ok = all(code == 202 for code in answers) and median(seconds) <= START_GOAL_SECONDS
        rows.append(Row(f"POST /trainings, {photos} inspected photos, through the local HTTP API "
                        f"(p50 / max, n={users})",
                        f"{median(seconds) * 1000:.0f} / {max(seconds) * 1000:.0f} ms"
                        + ("" if set(answers) == {202} else f" answers {sorted(set(answers))}"),
                        target=f"p50 ≤ {START_GOAL_SECONDS:.0f} s", ok=ok))
    return rows


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        print(render([*inspection_rows(), inspection_memory_row(scratch)]))
