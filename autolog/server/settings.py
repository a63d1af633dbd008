"""What one ``autolog server`` process serves, and how: :class:`ServerSettings`.

The settings are plain values so they travel to uvicorn's worker processes
(``--workers N`` starts each worker from an import string) through one
environment variable as JSON (:meth:`ServerSettings.to_env` / :meth:`from_env`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field

__all__ = ["SETTINGS_ENV", "ServerSettings"]

#: the environment variable the serving process hands its settings to workers in
SETTINGS_ENV = "AUTOLOG_SERVER_SETTINGS"

_MiB = 1024 * 1024


@dataclass
class ServerSettings:
    """Everything ``autolog server`` takes on its command line.

    - ``backend_store_uri``: any tracking URI autolog opens (path, ``file:``,
      ``sqlite:``, ``postgresql:``).
    - ``default_artifact_root``: where new experiments keep their artifacts,
      handed to clients as is (``s3://...``: clients write there directly).
      When None and ``serve_artifacts`` is on, runs get ``mlflow-artifacts:/``
      URIs and their files go through this server to ``artifacts_destination``.
    - ``artifacts_destination``: the root (any fsspec URL or a path) that the
      proxied artifact endpoints read and write; default ``./mlartifacts``.
    - ``allowed_hosts``: ``Host`` header values accepted (``name``,
      ``name:port``, ``*.example.com``, ``*``); None means loopback names, the
      bind address and private IP addresses.
    - ``auth_file``: a JSON file of bearer-token hashes and users (see
      ``autolog.server.auth``); None serves without authentication.
    - ``db_connections``: the connection budget of one process: the SQL pool
      size and the number of threads serving store calls (N processes over one
      database use up to N x this many connections).
    - ``max_request_bytes``: the largest API request body (artifact uploads
      excepted); ``max_artifact_bytes``: the largest artifact upload (None: no limit).
    """

    backend_store_uri: str = "./mlruns"
    default_artifact_root: str | None = None
    artifacts_destination: str | None = None
    serve_artifacts: bool = True
    host: str = "127.0.0.1"
    port: int = 5000
    workers: int = 1
    auth_file: str | None = None
    allowed_hosts: list[str] | None = None
    cors_allowed_origins: list[str] = field(default_factory=list)
    max_request_bytes: int = 64 * _MiB
    max_artifact_bytes: int | None = None
    db_connections: int = 10

    @property
    def destination(self) -> str:
        """The proxied artifacts' root."""
        return self.artifacts_destination or "./mlartifacts"

    def store_artifact_root(self) -> str | None:
        """The artifact root the backend store gives new experiments."""
        if self.default_artifact_root:
            return self.default_artifact_root
        if self.serve_artifacts:
            return "mlflow-artifacts:"
        return self.destination

    def to_env(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_env(cls) -> ServerSettings:
        """The settings the serving process left in ``AUTOLOG_SERVER_SETTINGS``."""
        text = os.environ.get(SETTINGS_ENV)
        return cls(**json.loads(text)) if text else cls()
