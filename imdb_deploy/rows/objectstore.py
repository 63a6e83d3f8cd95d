"""Inputs and outputs on object stores (s3://, gs://, az://: any fsspec URL), as both engines use them.

fsspec (and s3fs, gcsfs, adlfs behind it) does the work; this module only words its failures for people
(a missing bucket, denied access, a missing package: one line naming the URL and the fix) and writes an
object completely or not at all. Credentials come from where each library looks: for s3://, botocore's
usual chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_PROFILE, an instance role) and AWS_ENDPOINT_URL
(or AWS_ENDPOINT_URL_S3) for an S3-compatible server such as MinIO or moto.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import fsspec

from imdb_deploy.errors import ImdbDeployError, OutputError

# Stores whose first path part is a bucket (or container): a missing one is named as such.
BUCKET_STORES = ("s3", "s3a", "gs", "gcs", "az", "abfs", "abfss")

PACKAGES = {
    "s3": "s3fs",
    "s3a": "s3fs",
    "gs": "gcsfs",
    "gcs": "gcsfs",
    "az": "adlfs",
    "abfs": "adlfs",
    "abfss": "adlfs",
}

CREDENTIALS = {
    "s3": "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)",
    "s3a": "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)",
    "gs": "GOOGLE_APPLICATION_CREDENTIALS",
    "gcs": "GOOGLE_APPLICATION_CREDENTIALS",
}


def protocol(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else ""


def bucket(url: str) -> str:
    return url.split("://", 1)[-1].split("/", 1)[0]


def _detail(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def url_error(exc: BaseException, url: str, error: type[ImdbDeployError]) -> ImdbDeployError | None:
    """`exc` from an fsspec call on `url` as a one-line `error` naming the fix; None for other failures.

    Covers a missing filesystem package, denied access (HTTP 403), missing credentials and a missing bucket.
    """
    scheme = protocol(url)
    if isinstance(exc, ImportError):
        package = PACKAGES.get(scheme)
        fix = f"pip install {package}" if package else "install the fsspec filesystem for it"
        return error(f"{url}: {scheme}:// URLs need a filesystem package ({_detail(exc)}); {fix}")
    if isinstance(exc, PermissionError) or type(exc).__name__ in ("NoCredentialsError", "PartialCredentialsError"):
        where = CREDENTIALS.get(scheme, "the credentials")
        return error(f"{url}: access denied ({_detail(exc)}); check {where} and the bucket's policy")
    if isinstance(exc, FileNotFoundError) and scheme in BUCKET_STORES and "bucket" in str(exc).lower():
        return error(f"{url}: no bucket {bucket(url)!r} ({_detail(exc)}); check its name or create it")
    return None


def bucket_problem(url: str, error: type[ImdbDeployError]) -> ImdbDeployError | None:
    """A missing bucket (or filesystem package) behind `url`, found with one request; None otherwise.

    Access denied to the bucket itself is not a problem here: a role may write objects without the right to
    look at the bucket (S3's HeadBucket needs s3:ListBucket); the read or write that follows tells.
    """

    if protocol(url) not in BUCKET_STORES:
        return None
    try:
        fs, _ = fsspec.core.url_to_fs(url)
        fs.info(bucket(url))
    except FileNotFoundError:
        return error(f"{url}: no bucket {bucket(url)!r}; check its name or create it")
    except PermissionError:
        return None
    except (ImportError, OSError, ValueError) as exc:
        return url_error(exc, url, error) or error(f"{url}: cannot reach it ({_detail(exc)}); check the URL")
    return None


@contextmanager
def url_output(url: str, wrap: Callable | None = None) -> Iterator:
    """A binary file at `url` (or `wrap(file)`, e.g. a text or gzip stream over it) that appears only if the
    block completes: an object store shows an object once its upload is complete; a failed block aborts the
    upload and leaves nothing, nor an old object changed. The bucket is checked first, so a wrong name fails
    before any work; a refused upload fails at the end, as one line.

    Raises:
        OutputError: a missing bucket, denied access, or a missing filesystem package.
    """

    problem = bucket_problem(url, OutputError)
    if problem is not None:
        raise problem
    try:
        fs, path = fsspec.core.url_to_fs(url)
        handle = fs.open(path, "wb", autocommit=False)
    except (ImportError, OSError, ValueError) as exc:
        raise url_error(exc, url, OutputError) or exc from exc
    stream = wrap(handle) if wrap is not None else handle
    try:
        yield stream
    except BaseException:
        _discard(handle)
        raise
    try:
        stream.close()  # a gzip stream leaves its file open: both are closed
        handle.close()
        handle.commit()
    except OSError as exc:
        _discard(handle)
        raise url_error(exc, url, OutputError) or exc from exc


def _discard(handle) -> None:
    try:
        handle.discard()
    finally:
        handle.closed = True  # discarded: nothing left to flush
