"""Our S3 bucket: user photos, training zips, and copies of generation outputs."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

PRESIGNED_GET_SECONDS = 900
ZIP_PART_BYTES = 8 * 1024 * 1024
"""One multipart part of a training zip (S3's minimum is 5 MiB): what the zip holds in memory."""
READ_CHUNK_BYTES = 1024 * 1024


def user_prefix(user_id: str) -> str:
    return f"users/{user_id}/"


def generation_output_key(user_id: str, generation_id: str, index: int, extension: str) -> str:
    return f"{user_prefix(user_id)}generations/{generation_id}/{index}.{extension}"


def extension_for(content_type: str, url: str) -> str:
    for ext in ("png", "webp", "jpg", "jpeg"):
        if ext in content_type or url.lower().endswith(f".{ext}"):
            return "jpg" if ext == "jpeg" else ext
    return "bin"


@dataclass(frozen=True)
class ObjectHead:
    size: int
    etag: str


@dataclass(frozen=True)
class ZipMember:
    """One file of a training zip: `source_key`'s bytes, exactly as they were when `etag` was read."""

    name: str
    source_key: str
    etag: str | None


class ObjectChanged(Exception):
    """An object's bytes are no longer the ones an earlier read saw (its ETag moved on)."""

    def __init__(self, key: str) -> None:
        super().__init__(f"{key} changed after it was inspected")
        self.key = key


class MediaStore:
    def __init__(self, s3_client: Any, bucket: str) -> None:
        self._s3 = s3_client
        self.bucket = bucket

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self._s3.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)

    def get(self, key: str) -> bytes:
        return bytes(self._s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def get_with_etag(self, key: str) -> tuple[bytes, str]:
        """The object's bytes and the ETag of exactly those bytes (one request)."""
        response = self._s3.get_object(Bucket=self.bucket, Key=key)
        return bytes(response["Body"].read()), str(response["ETag"])

    def delete(self, key: str) -> None:
        self._s3.delete_object(Bucket=self.bucket, Key=key)

    def delete_prefix(self, prefix: str) -> tuple[int, dict[str, str]]:
        """Delete every object under `prefix` (a thousand a request): how many went, and each key S3
        refused with its reason. In the versioned bucket a deleted object's older versions are
        expired by the bucket's lifecycle rule (template: 30 days)."""
        deleted, refused = 0, dict[str, str]()
        for page in self._s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if keys:
                answer = self._s3.delete_objects(Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True})
                errors = {e["Key"]: f"{e.get('Code')}: {e.get('Message')}" for e in answer.get("Errors", [])}
                refused |= errors
                deleted += len(keys) - len(errors)
        return deleted, refused

    def presigned_get(self, key: str, *, expires_in: int = PRESIGNED_GET_SECONDS) -> str:
        return str(self._s3.generate_presigned_url("get_object", Params={"Bucket": self.bucket, "Key": key},
                                                   ExpiresIn=expires_in))

    def head(self, key: str) -> ObjectHead | None:
        """The object's size and ETag, or None when there is no such object."""
        from botocore.exceptions import ClientError

        try:
            response = self._s3.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return ObjectHead(int(response["ContentLength"]), str(response["ETag"]))

    def size(self, key: str) -> int | None:
        head = self.head(key)
        return head.size if head else None

    def presigned_post(self, key: str, content_type: str, *, max_bytes: int,
                       expires_in: int = PRESIGNED_GET_SECONDS) -> dict[str, Any]:
        """A browser form upload whose policy S3 enforces: this key, this content type, at most
        `max_bytes` (a larger upload is refused by S3 itself, before anything is stored)."""
        post = self._s3.generate_presigned_post(
            Bucket=self.bucket, Key=key, Fields={"Content-Type": content_type},
            Conditions=[{"Content-Type": content_type}, ["content-length-range", 1, max_bytes]],
            ExpiresIn=expires_in)
        return {"url": str(post["url"]), "fields": {str(k): str(v) for k, v in post["fields"].items()}}

    def write_zip(self, key: str, members: Iterable[ZipMember]) -> int:
        """Stream `members` from the bucket into one zip at `key`, in bounded memory: each source is
        read in chunks (and only if its ETag is still the one given, else `ObjectChanged`), and the
        zip goes up as an S3 multipart upload, one part at a time. Returns the zip's size.

        Entries are stored, not deflated (photos do not compress); past 2 GiB the zip switches to
        ZIP64 records by itself. A failure aborts the upload, so no partial zip is left behind."""
        upload_id = self._s3.create_multipart_upload(Bucket=self.bucket, Key=key,
                                                     ContentType="application/zip")["UploadId"]
        parts = _MultipartParts(self._s3, self.bucket, key, upload_id)
        try:
            with zipfile.ZipFile(parts, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
                for member in members:
                    with archive.open(member.name, "w", force_zip64=False) as entry:
                        for chunk in self._chunks(member):
                            entry.write(chunk)
            size = parts.finish()
        except BaseException:
            self._s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            raise
        return size

    def _chunks(self, member: ZipMember) -> Iterable[bytes]:
        from botocore.exceptions import ClientError

        extra = {"IfMatch": member.etag} if member.etag else {}
        try:
            body = self._s3.get_object(Bucket=self.bucket, Key=member.source_key, **extra)["Body"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412"):
                raise ObjectChanged(member.source_key) from exc
            raise
        try:
            yield from body.iter_chunks(READ_CHUNK_BYTES)
        finally:
            body.close()


class _MultipartParts(io.RawIOBase):
    """A write-only, unseekable stream whose bytes go to S3 as multipart parts of `ZIP_PART_BYTES`
    (zipfile writes to it as to a pipe: sizes go in data descriptors, nothing is rewritten)."""

    def __init__(self, s3: Any, bucket: str, key: str, upload_id: str) -> None:
        super().__init__()
        self._s3, self._bucket, self._key, self._upload_id = s3, bucket, key, upload_id
        self._buffer = bytearray()
        self._parts: list[dict[str, Any]] = []
        self._written = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._buffer += data
        self._written += len(data)
        while len(self._buffer) >= ZIP_PART_BYTES:
            self._upload(bytes(self._buffer[:ZIP_PART_BYTES]))
            del self._buffer[:ZIP_PART_BYTES]
        return len(data)

    def finish(self) -> int:
        if self._buffer or not self._parts:
            self._upload(bytes(self._buffer))
            self._buffer.clear()
        self._s3.complete_multipart_upload(Bucket=self._bucket, Key=self._key, UploadId=self._upload_id,
                                           MultipartUpload={"Parts": self._parts})
        return self._written

    def _upload(self, data: bytes) -> None:
        number = len(self._parts) + 1
        response = self._s3.upload_part(Bucket=self._bucket, Key=self._key, UploadId=self._upload_id,
                                        PartNumber=number, Body=data)
        self._parts.append({"PartNumber": number, "ETag": response["ETag"]})
