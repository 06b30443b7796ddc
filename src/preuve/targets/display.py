"""How a target's repository is shown to people: in the database, reports and the web page.

The display string reads like restic's repository syntax but never carries a credential: user names
and passwords in URLs, query strings (tokens) and fragments are dropped. The SSH user is left out too;
the host and path are what a technician needs to find the repository.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from preuve.config.model import LocalTarget, RestTarget, S3Target, SftpTarget

TargetSpec = LocalTarget | SftpTarget | S3Target | RestTarget


def repository_display(spec: TargetSpec) -> str:
    if isinstance(spec, LocalTarget):
        return f"local:{spec.path}"
    if isinstance(spec, SftpTarget):
        if spec.port != 22:
            # restic's URL form is the only one that carries a port: sftp://host:port//absolute/path
            return f"sftp://{spec.host}:{spec.port}/{spec.path}"
        return f"sftp:{spec.host}:{spec.path}"
    if isinstance(spec, S3Target):
        prefix = spec.prefix.strip("/")
        location = f"{_without_credentials(spec.endpoint)}/{spec.bucket}"
        return f"s3:{location}/{prefix}" if prefix else f"s3:{location}"
    if isinstance(spec, RestTarget):
        return f"rest:{_without_credentials(spec.url)}"
    raise TypeError(f"unknown target kind {type(spec).__name__}")


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]  # drop "user:password@", keep host and port as written
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
