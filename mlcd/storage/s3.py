"""S3 for the storage seam: one boto3 client per process, object operations, and errors that
name the bucket, key or endpoint.

Only ``mlcd.storage`` calls this module. The client's endpoint and region come from the ``[s3]``
section of luigi.cfg or, when that says nothing, from the standard AWS variables
(``AWS_ENDPOINT_URL``, ``AWS_DEFAULT_REGION``...); credentials always come from boto3's default
chain (environment, profile, instance role), never from a file mlcd writes. Retries use
botocore's ``standard`` mode unless told otherwise, so throttling and transient 5xx answers are
retried with backoff.
"""

from __future__ import annotations

import io
import os
import re
import sys
import threading
from dataclasses import dataclass
from typing import Any

from mlcd.errors import ConfigError, StorageError

# Over this size an object is uploaded in parts; it still appears only when the upload completes.
MULTIPART_THRESHOLD = 8 * 1024 * 1024
TRACE_ENV = "MLCD_S3_TRACE"
WAIT_NOTICE_ENV = "MLCD_S3_WAIT_NOTICE"  # seconds without an answer before mlcd says so

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


class Conflict(StorageError):
    """A conditional write lost: the object changed (or appeared) since it was read."""


class NoConditionalWrites(StorageError):
    """The store does not honour If-None-Match / If-Match on PUT, so mlcd's locks, promotions
    and log appends would race silently there."""


@dataclass(frozen=True)
class Location:
    bucket: str
    key: str

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def parse(uri: str) -> Location:
    """``s3://bucket/key`` as a Location; a clear error for anything else."""
    if not uri.startswith("s3://"):
        raise ConfigError(f"{uri!r} is not an S3 URI (s3://BUCKET/KEY)")
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not _BUCKET.fullmatch(bucket) or ".." in bucket:
        raise ConfigError(
            f"{uri!r}: {bucket!r} is not a valid S3 bucket name (3-63 lowercase letters, digits, "
            "'.' and '-'); write locations as s3://BUCKET/KEY"
        )
    if any(part in (".", "..") for part in key.split("/")):
        raise ConfigError(f"{uri!r}: a key may not contain '.' or '..' segments")
    return Location(bucket, key.strip("/") if key.endswith("/") else key)


def check_uri(uri: str) -> str:
    """``uri`` unchanged if it is a well-formed s3:// URI (ConfigError otherwise)."""
    parse(uri)
    return uri


def join(base: str, *parts: str) -> str:
    loc = parse(base)
    keys = [loc.key.rstrip("/")] if loc.key else []
    keys += [p.strip("/") for p in parts if p and p.strip("/")]
    joined = f"s3://{loc.bucket}/{'/'.join(keys)}"
    parse(joined)
    return joined


# --- the client -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    endpoint_url: str | None
    region_name: str | None
    addressing_style: str | None
    retry_mode: str
    max_attempts: int
    connect_timeout: float
    read_timeout: float

    def endpoint(self) -> str:
        return self.endpoint_url or f"AWS S3 ({self.region_name or 'default region'})"


def settings() -> Settings:
    """The ``[s3]`` section of luigi.cfg over the AWS environment variables over defaults."""
    import luigi.configuration

    conf = luigi.configuration.get_config()

    def get(option: str, *env: str) -> str | None:
        if conf.has_option("s3", option):
            value = str(conf.get("s3", option)).strip()
            if value:
                return value
        for name in env:
            if os.environ.get(name):
                return os.environ[name]
        return None

    def number(option: str, env: str | None, default: float) -> float:
        text = get(option, *([env] if env else []))
        try:
            return float(text) if text is not None else default
        except ValueError:
            raise ConfigError(
                f"luigi.cfg [s3] {option} = {text!r} is not a number; fix it or remove the line"
            ) from None

    style = get("addressing_style")
    if style not in (None, "auto", "path", "virtual"):
        raise ConfigError(f"luigi.cfg [s3] addressing_style = {style!r}; use auto, path or virtual")
    mode = get("retry_mode", "AWS_RETRY_MODE") or "standard"
    if mode not in ("legacy", "standard", "adaptive"):
        raise ConfigError(f"[s3] retry_mode = {mode!r}; use standard or adaptive")
    return Settings(
        endpoint_url=get("endpoint_url", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
        region_name=get("region_name", "AWS_REGION", "AWS_DEFAULT_REGION"),
        addressing_style=style,
        retry_mode=mode,
        max_attempts=int(number("max_attempts", "AWS_MAX_ATTEMPTS", 5)),
        connect_timeout=number("connect_timeout", None, 5.0),
        read_timeout=number("read_timeout", None, 60.0),
    )


_lock = threading.Lock()
_client: tuple[int, Any, Settings] | None = None
_buckets_seen: set[str] = set()


def client() -> tuple[Any, Settings]:
    """This process's boto3 client (a forked Luigi worker makes its own: sockets are not shared
    across a fork)."""
    global _client
    with _lock:
        if _client is None or _client[0] != os.getpid():
            import boto3
            from botocore.config import Config

            conf = settings()
            s3_config: dict[str, Any] = {}
            if conf.addressing_style:
                s3_config["addressing_style"] = conf.addressing_style
            made = boto3.session.Session().client(
                "s3",
                endpoint_url=conf.endpoint_url,
                region_name=conf.region_name,
                config=Config(
                    retries={"mode": conf.retry_mode, "total_max_attempts": conf.max_attempts},
                    connect_timeout=conf.connect_timeout,
                    read_timeout=conf.read_timeout,
                    s3=s3_config or None,
                ),
            )
            if os.environ.get(TRACE_ENV):
                made.meta.events.register("before-send.s3", _trace)
            made.meta.events.register("before-send.s3", _waiting.started)
            made.meta.events.register("needs-retry.s3", _waiting.ended)
            _waiting.watch(conf)
            _client = (os.getpid(), made, conf)
            _buckets_seen.clear()
        return _client[1], _client[2]


class _Waiting:
    """Says what is being waited for when the store does not answer: a request in flight for
    longer than WAIT_NOTICE_ENV seconds (default 10) gets a line on stderr, and another each
    time as long again passes, instead of minutes of silence while timeouts and retries run."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.inflight: dict[int, tuple[float, str, int]] = {}  # thread -> start, request, notes
        self.pid: int | None = None

    def started(self, request: Any, **_: Any) -> None:
        import time

        url = str(request.url).split("?", 1)[0]
        with self.lock:
            self.inflight[threading.get_ident()] = (time.monotonic(), f"{request.method} {url}", 0)

    def ended(self, **_: Any) -> None:
        with self.lock:
            self.inflight.pop(threading.get_ident(), None)

    def watch(self, conf: Settings) -> None:
        if self.pid == os.getpid():
            return
        self.pid = os.getpid()
        self.inflight.clear()
        every = float(os.environ.get(WAIT_NOTICE_ENV) or 10)
        threading.Thread(target=self._loop, args=(conf, every), daemon=True).start()

    def _loop(self, conf: Settings, every: float) -> None:
        import time

        while True:
            time.sleep(min(1.0, every / 4))
            now = time.monotonic()
            with self.lock:
                due = []
                for thread, (since, what, notes) in self.inflight.items():
                    if now - since >= every * (notes + 1):
                        self.inflight[thread] = (since, what, notes + 1)
                        due.append((now - since, what))
            for seconds, what in due:
                print(
                    f"mlcd: waiting for the S3 store at {conf.endpoint()}: {what} has had no "
                    f"answer for {seconds:.0f} s (read_timeout {conf.read_timeout:g} s, up to "
                    f"{conf.max_attempts} attempts; luigi.cfg [s3] sets them)",
                    file=sys.stderr,
                    flush=True,
                )


_waiting = _Waiting()


def _trace(request: Any, **_: Any) -> None:
    # One line per HTTP request sent (retries included), without headers: no credentials.
    url = str(request.url).split("?", 1)
    query = f"?{url[1]}" if len(url) > 1 and "uploadId" not in url[1] else ""
    print(f"mlcd: s3 {request.method} {url[0]}{query}", file=sys.stderr, flush=True)


def _fail(exc: BaseException, what: str, loc: Location | None = None) -> StorageError:
    """The StorageError that says what went wrong with ``what`` and how to fix it."""
    from botocore.exceptions import (
        ClientError,
        ConnectionError,
        EndpointConnectionError,
        NoCredentialsError,
        PartialCredentialsError,
    )

    _, conf = client()
    endpoint = conf.endpoint()
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return StorageError(
            f"{what}: no AWS credentials found for {endpoint}; set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or run with an instance role"
        )
    if isinstance(exc, (EndpointConnectionError, ConnectionError)):
        return StorageError(
            f"{what}: cannot reach the S3 endpoint {endpoint} ({type(exc).__name__}); check "
            "endpoint_url in luigi.cfg [s3] or AWS_ENDPOINT_URL, and that the server is up"
        )
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        bucket = loc.bucket if loc else "?"
        if code == "NoSuchBucket":
            return StorageError(
                f"{what}: bucket {bucket!r} does not exist at {endpoint}; create it, or fix the "
                "location in the config"
            )
        if code in ("AccessDenied", "403", "AllAccessDisabled") or status == 403:
            return StorageError(
                f"{what}: access denied to {loc or 'S3'} at {endpoint}; the credentials in use "
                f"lack permission on bucket {bucket!r} (s3:GetObject, s3:PutObject, "
                "s3:ListBucket, s3:DeleteObject)"
            )
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken"):
            return StorageError(
                f"{what}: {endpoint} rejected the credentials ({code}); check "
                "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the profile in use"
            )
        if code in ("PreconditionFailed", "412") or status == 412:
            return Conflict(f"{what}: {loc} changed meanwhile (another writer)")
        tries = exc.response.get("ResponseMetadata", {}).get("RetryAttempts")
        tried = f" after {int(tries) + 1} attempts" if tries else ""
        return StorageError(
            f"{what}: {endpoint} answered {code or status}{tried}: "
            f"{error.get('Message', '')}".rstrip(": ")
        )
    return StorageError(f"{what}: {type(exc).__name__}: {exc}")


def _call(operation: str, what: str, loc: Location, **kwargs: Any) -> Any:
    s3, _ = client()
    try:
        return getattr(s3, operation)(**kwargs)
    except Exception as exc:
        raise _fail(exc, what, loc) from None


def _missing(exc: BaseException) -> bool:
    from botocore.exceptions import ClientError

    if not isinstance(exc, ClientError):
        return False
    code = str(exc.response.get("Error", {}).get("Code", ""))
    return code in ("404", "NoSuchKey", "NotFound")


def check_bucket(loc: Location) -> None:
    """StorageError unless ``loc``'s bucket exists and can be reached (once per process)."""
    if loc.bucket in _buckets_seen:
        return
    s3, _ = client()
    try:
        s3.head_bucket(Bucket=loc.bucket)
    except Exception as exc:
        if _missing(exc):
            from botocore.exceptions import ClientError

            exc = ClientError({"Error": {"Code": "NoSuchBucket"}}, "HeadBucket")
        raise _fail(exc, f"cannot use {loc}", loc) from None
    _buckets_seen.add(loc.bucket)


# --- objects -----------------------------------------------------------------------------------


def head(uri: str) -> dict[str, Any] | None:
    """The object's metadata (size, ETag, LastModified), None when there is no such object."""
    loc = parse(uri)
    s3, _ = client()
    try:
        answer: dict[str, Any] = s3.head_object(Bucket=loc.bucket, Key=loc.key)
        _buckets_seen.add(loc.bucket)
        return answer
    except Exception as exc:
        if _missing(exc):
            check_bucket(loc)  # a HEAD's 404 does not say whether the bucket is missing
            return None
        raise _fail(exc, f"cannot read {uri}", loc) from None


def fetch(uri: str) -> tuple[bytes, str] | None:
    """The object's bytes and ETag; None when it does not exist."""
    loc = parse(uri)
    s3, _ = client()
    try:
        answer = s3.get_object(Bucket=loc.bucket, Key=loc.key)
        return answer["Body"].read(), str(answer["ETag"])
    except Exception as exc:
        if _missing(exc):
            return None
        raise _fail(exc, f"cannot read {uri}", loc) from None


def stream(uri: str) -> Any:
    """The object as a file read front to back, fetched as it is read (FileNotFoundError when
    there is no such object)."""
    loc = parse(uri)
    s3, _ = client()
    try:
        answer = s3.get_object(Bucket=loc.bucket, Key=loc.key)
    except Exception as exc:
        if _missing(exc):
            raise FileNotFoundError(uri) from None
        raise _fail(exc, f"cannot read {uri}", loc) from None
    return answer["Body"]


def read_range(uri: str, start: int, end: int) -> bytes:
    """Bytes ``start`` to ``end`` (exclusive) of the object."""
    loc = parse(uri)
    answer = _call(
        "get_object",
        f"cannot read {uri}",
        loc,
        Bucket=loc.bucket,
        Key=loc.key,
        Range=f"bytes={start}-{max(start, end - 1)}",
    )
    data: bytes = answer["Body"].read()
    return data


# --- conditional writes ------------------------------------------------------------------------

# Per (endpoint, bucket): how the store takes If-Match, "quoted" (the ETag as S3 returns it) or
# "unquoted" (Ceph RGW 16 answers 412 to the quoted form of an ETag that matches), or why it
# cannot be used (it ignores conditions). Probed once per process.
_conditional: dict[tuple[str | None, str], str] = {}
_STALE_ETAG = '"00000000000000000000000000000000"'


def _wins(s3: Any, loc: Location, what: str, **kwargs: Any) -> bool:
    """Whether a conditional PUT was applied (False: the store refused it with 412/409)."""
    try:
        s3.put_object(Bucket=loc.bucket, Key=loc.key, **kwargs)
        return True
    except Exception as exc:
        failed = _fail(exc, what, loc)
        if isinstance(failed, Conflict) or "ConditionalRequestConflict" in str(failed):
            return False
        raise failed from None


def conditional_mode(uri: str, *, folder: bool = False) -> str:
    """Check, once per bucket and process, that the store honours conditional PUTs, with five
    PUTs and a DELETE of a probe object beside ``uri``: If-None-Match must refuse to replace an
    object, If-Match must refuse a stale ETag and take the current one. NoConditionalWrites
    otherwise, naming the store and what it ignored."""
    loc = parse(uri)
    s3, conf = client()
    key = (conf.endpoint_url, loc.bucket)
    if key in _conditional:
        if _conditional[key] not in ("quoted", "unquoted"):
            raise NoConditionalWrites(_conditional[key])  # the verdict of the first probe
        return _conditional[key]
    import uuid

    # beside the object, or inside the folder (a workspace, a registry), where mlcd may write
    where = loc.key.rstrip("/") if folder else loc.key.rpartition("/")[0]
    probe = Location(loc.bucket, f"{where}/.mlcd-probe-{uuid.uuid4().hex}".lstrip("/"))
    what = f"cannot check conditional writes at {probe}"

    def refuse(ignored: str) -> NoConditionalWrites:
        _conditional[key] = (
            f"the S3 store at {conf.endpoint()} ignores conditional writes in bucket "
            f"{loc.bucket!r} ({ignored}): two mlcd processes writing at once could overwrite "
            "each other's lock, promotion or version without an error, so mlcd refuses to use "
            "it for a workspace or registry. Use a store that honours If-None-Match and "
            "If-Match on PUT (AWS S3, MinIO, Ceph RGW), or a local or NFS path"
        )
        return NoConditionalWrites(_conditional[key])

    try:
        # (a retried PUT whose first attempt was applied is refused with 412: not a verdict)
        _wins(s3, probe, what, Body=b"1", IfNoneMatch="*")
        if _wins(s3, probe, what, Body=b"2", IfNoneMatch="*"):
            raise refuse("a PUT with If-None-Match: * replaced an existing object")
        if _wins(s3, probe, what, Body=b"3", IfMatch=_STALE_ETAG):
            raise refuse("a PUT with If-Match and a stale ETag was applied")
        mode = None
        for _ in range(3):  # the ETag read again each time: a retried PUT may have changed it
            etag = str((head(str(probe)) or {}).get("ETag") or "")
            if _wins(s3, probe, what, Body=b"4", IfMatch=etag):
                mode = "quoted"
            elif _wins(s3, probe, what, Body=b"5", IfMatch=etag.strip('"')):
                mode = "unquoted"
            if mode is not None:
                break
        if mode is None:
            raise refuse("a PUT with If-Match and the object's own ETag was refused")
    finally:
        try:
            s3.delete_object(Bucket=probe.bucket, Key=probe.key)
        except Exception:
            pass  # a leftover probe object is harmless
    _conditional[key] = mode
    return mode


def _if_match(uri: str, etag: str) -> str:
    return etag.strip('"') if conditional_mode(uri) == "unquoted" else etag


def put(uri: str, data: bytes, *, if_absent: bool = False, if_etag: str | None = None) -> str:
    """Store ``data`` as the object: whole or not at all; its new ETag.

    Large objects go up in parts and appear when the upload completes (an interrupted upload
    leaves no object). ``if_absent``/``if_etag`` make it a conditional write, which raises
    Conflict when the object exists / no longer has that ETag.
    """
    loc = parse(uri)
    s3, _ = client()
    what = f"cannot write {uri}"
    if len(data) > MULTIPART_THRESHOLD and not (if_absent or if_etag):
        from boto3.s3.transfer import TransferConfig

        config = TransferConfig(
            multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=MULTIPART_THRESHOLD
        )
        try:
            s3.upload_fileobj(io.BytesIO(data), loc.bucket, loc.key, Config=config)
        except Exception as exc:
            raise _fail(getattr(exc, "last_exception", None) or exc, what, loc) from None
        meta = head(uri)
        return str(meta["ETag"]) if meta else ""
    kwargs: dict[str, Any] = {"Bucket": loc.bucket, "Key": loc.key, "Body": data}
    if if_absent or if_etag:
        conditional_mode(uri)  # refuses a store that would ignore the condition
    if if_absent:
        kwargs["IfNoneMatch"] = "*"
    if if_etag:
        kwargs["IfMatch"] = _if_match(uri, if_etag)
    answer = _call("put_object", what, loc, **kwargs)
    return str(answer.get("ETag", ""))


def delete(uri: str, *, if_etag: str | None = None) -> None:
    loc = parse(uri)
    kwargs: dict[str, Any] = {"Bucket": loc.bucket, "Key": loc.key}
    if if_etag:
        kwargs["IfMatch"] = _if_match(uri, if_etag)
    s3, _ = client()
    try:
        s3.delete_object(**kwargs)
    except Exception as exc:
        if _missing(exc):
            return
        raise _fail(exc, f"cannot delete {uri}", loc) from None


def list_prefix(uri: str, *, recursive: bool = False) -> dict[str, dict[str, Any]]:
    """What is under the folder ``uri``: relative name -> {"size", "etag"} for objects, and
    name -> {} for sub-folders (when not recursive)."""
    loc = parse(uri)
    prefix = f"{loc.key.rstrip('/')}/" if loc.key else ""
    s3, _ = client()
    found: dict[str, dict[str, Any]] = {}
    kwargs: dict[str, Any] = {"Bucket": loc.bucket, "Prefix": prefix}
    if not recursive:
        kwargs["Delimiter"] = "/"
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(**kwargs):
            for item in page.get("CommonPrefixes") or []:
                found[item["Prefix"][len(prefix) :].rstrip("/")] = {}
            for item in page.get("Contents") or []:
                found[item["Key"][len(prefix) :]] = {"size": item["Size"], "etag": item["ETag"]}
    except Exception as exc:
        raise _fail(exc, f"cannot list {uri}", loc) from None
    _buckets_seen.add(loc.bucket)
    return found


class RangeReader(io.RawIOBase):
    """A read-only, seekable file over one S3 object, fetching only the byte ranges asked for
    (Parquet readers jump to the footer and to the columns they need)."""

    def __init__(self, uri: str, size: int) -> None:
        super().__init__()
        self.uri, self.size, self.position = uri, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence]
        self.position = max(0, base + offset)
        return self.position

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        end = min(self.size, self.position + len(view))
        if end <= self.position:
            return 0
        data = read_range(self.uri, self.position, end)
        view[: len(data)] = data
        self.position += len(data)
        return len(data)
