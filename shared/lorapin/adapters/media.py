"""Our S3 bucket: user photos, training zips, and copies of generation outputs."""

from __future__ import annotations

from typing import Any

PRESIGNED_GET_SECONDS = 900


def user_prefix(user_id: str) -> str:
    return f"users/{user_id}/"


def generation_output_key(user_id: str, generation_id: str, index: int, extension: str) -> str:
    return f"{user_prefix(user_id)}generations/{generation_id}/{index}.{extension}"


def extension_for(content_type: str, url: str) -> str:
    for ext in ("png", "webp", "jpg", "jpeg"):
        if ext in content_type or url.lower().endswith(f".{ext}"):
            return "jpg" if ext == "jpeg" else ext
    return "bin"


class MediaStore:
    def __init__(self, s3_client: Any, bucket: str) -> None:
        self._s3 = s3_client
        self.bucket = bucket

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self._s3.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)

    def get(self, key: str) -> bytes:
        return bytes(self._s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def presigned_get(self, key: str, *, expires_in: int = PRESIGNED_GET_SECONDS) -> str:
        return str(self._s3.generate_presigned_url("get_object", Params={"Bucket": self.bucket, "Key": key},
                                                   ExpiresIn=expires_in))

    def size(self, key: str) -> int | None:
        """The object's size, or None when there is no such object."""
        from botocore.exceptions import ClientError

        try:
            return int(self._s3.head_object(Bucket=self.bucket, Key=key)["ContentLength"])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def presigned_put(self, key: str, content_type: str, *, expires_in: int = PRESIGNED_GET_SECONDS) -> str:
        return str(self._s3.generate_presigned_url(
            "put_object", Params={"Bucket": self.bucket, "Key": key, "ContentType": content_type},
            ExpiresIn=expires_in))
