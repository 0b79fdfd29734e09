"""Airflow's REST API v2, as a data engineer uses it from a shell: a token, then a few calls.

Used by ``epay airflow clear`` (exact task ids: Airflow 3.3.2's ``airflow tasks clear -t`` is a substring
match, so ``-t '^send$'`` clears nothing and still exits 0) and by the stack launcher (``deploy/stack.py``)
for its readiness wait. Standard library only; nothing here imports Airflow.

Where to reach the api-server and as whom:

- ``AIRFLOW__API__BASE_URL`` (the same setting Airflow uses for its log links), e.g. ``http://127.0.0.1:28080``;
- ``AIRFLOW_API_USERNAME`` (default ``admin``) and its password: ``AIRFLOW_API_PASSWORD`` if set, else the
  SimpleAuthManager passwords file ``AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE`` (JSON
  ``{"user": "password"}``), which is what ``make stack`` writes.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ALGIERS = ZoneInfo("Africa/Algiers")


class AirflowApiError(Exception):
    """The api-server could not be reached or refused a call (the message says which and why)."""


class UsageError(ValueError):
    """Missing or unusable settings for reaching the api-server (a usage error: exit status 2)."""


@dataclass
class AirflowApi:
    base_url: str
    username: str
    password: str = field(repr=False)  # never in a traceback or a log
    timeout: float = 30.0
    _token: str | None = field(default=None, repr=False)

    @classmethod
    def from_environment(cls, base_url: str | None = None) -> AirflowApi:
        url = base_url or os.environ.get("AIRFLOW__API__BASE_URL", "")
        if not url:
            raise UsageError(
                "say where the api-server is: set AIRFLOW__API__BASE_URL (e.g. http://127.0.0.1:28080; "
                "`. var/stack/dev/env.sh` sets it for the local stack) or pass --api-url"
            )
        username = os.environ.get("AIRFLOW_API_USERNAME", "admin")
        return cls(url.rstrip("/"), username, password_of(username))

    def token(self) -> str:
        if self._token is None:
            reply = self._call(
                "POST", "/auth/token", {"username": self.username, "password": self.password}, auth=False
            )
            self._token = str(reply["access_token"])
        return self._token

    def get(self, path: str, **query: Any) -> Any:
        pairs = [(k, v) for k, v in query.items() if v is not None]
        return self._call("GET", path + ("?" + urllib.parse.urlencode(pairs, doseq=True) if pairs else ""))

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self._call("POST", path, body)

    def patch(self, path: str, body: dict[str, Any]) -> Any:
        return self._call("PATCH", path, body)

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None, auth: bool = True) -> Any:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.token()}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")[:500]
            raise AirflowApiError(f"{method} {path}: HTTP {error.code} {detail}") from None
        except (urllib.error.URLError, OSError) as error:
            raise AirflowApiError(f"cannot reach the api-server at {self.base_url}: {error}") from None
        return json.loads(raw) if raw else None


def password_of(username: str) -> str:
    password = os.environ.get("AIRFLOW_API_PASSWORD")
    if password:
        return password
    file = os.environ.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", "")
    if not file:
        raise UsageError(
            "no password for the api-server: set AIRFLOW_API_PASSWORD, or "
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE (set by `. var/stack/NAME/env.sh`)"
        )
    try:
        passwords = json.loads(Path(file).read_text(encoding="utf-8"))
        return str(passwords[username])
    except (OSError, ValueError, KeyError, TypeError):
        raise UsageError(f"{file} holds no password for user {username!r}") from None


def day_bounds(day: date) -> tuple[str, str]:
    """The UTC instants bounding ``day`` in Africa/Algiers, as the API's date-time filters want them."""
    start = datetime.combine(day, time(0), tzinfo=ALGIERS)
    end = start + timedelta(days=1) - timedelta(microseconds=1)
    return start.isoformat(), end.isoformat()


def runs_of_day(api: AirflowApi, dag_id: str, day: date) -> list[dict[str, Any]]:
    """The runs of ``dag_id`` whose logical date falls on ``day`` in Algiers, oldest first."""
    start, end = day_bounds(day)
    reply = api.get(
        f"/api/v2/dags/{dag_id}/dagRuns",
        logical_date_gte=start,
        logical_date_lte=end,
        order_by="logical_date",
        limit=100,
    )
    runs: list[dict[str, Any]] = reply["dag_runs"]
    return runs


@dataclass(frozen=True)
class Cleared:
    dag_run_id: str
    task_instances: list[tuple[str, str | None]]  # (task_id, state before the clear)


def clear(
    api: AirflowApi,
    dag_id: str,
    dag_run_id: str,
    task_ids: list[str] | None,
    *,
    only_failed: bool,
    dry_run: bool,
    downstream: bool = True,
) -> Cleared:
    """``POST /api/v2/dags/{dag}/clearTaskInstances`` for one run: exact task ids (none: every task),
    with what runs after them (``downstream``: their ``upstream_failed`` followers run again too)."""
    body: dict[str, Any] = {
        "dag_run_id": dag_run_id,
        "dry_run": dry_run,
        "only_failed": only_failed,
        "reset_dag_runs": True,
        "include_upstream": False,
        "include_downstream": downstream and bool(task_ids),
    }
    if task_ids:
        body["task_ids"] = task_ids
    reply = api.post(f"/api/v2/dags/{dag_id}/clearTaskInstances", body)
    instances = [(str(ti["task_id"]), ti.get("state")) for ti in reply.get("task_instances", [])]
    return Cleared(dag_run_id, sorted(instances))


__all__ = [
    "AirflowApi",
    "AirflowApiError",
    "Cleared",
    "UsageError",
    "clear",
    "day_bounds",
    "password_of",
    "runs_of_day",
]
