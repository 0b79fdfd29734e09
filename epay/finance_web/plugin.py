"""The Airflow plugin, registered through the ``airflow.plugins`` entry point of the epay package
(``epay_finance = "epay.finance_web.plugin:EpayFinancePlugin"``).

It mounts the finance app under ``/epay-finance`` and adds "Finance (direct debit)" to the UI's Browse
menu: the page is shown inside the UI, in an iframe that carries the signed-in user's token cookie.

Every Airflow component loads plugins (the scheduler, each task process…), so this module imports nothing
heavy: the FastAPI app (pandas, the ledger) is built on the first request the api-server routes to it."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from airflow.plugins_manager import AirflowPlugin

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

URL_PREFIX = "/epay-finance"


class LazyApp:
    """An ASGI app that builds the real one on its first call."""

    def __init__(self, factory: Callable[[], ASGIApp]) -> None:
        self._factory = factory
        self._app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._app is None:
            self._app = self._factory()
        await self._app(scope, receive, send)


def _finance_app() -> ASGIApp:
    from epay.finance_web.app import create_app

    return create_app()


class EpayFinancePlugin(AirflowPlugin):
    name = "epay_finance"
    fastapi_apps: list[Any] = [  # noqa: RUF012 - AirflowPlugin's attributes are class-level lists
        {"app": LazyApp(_finance_app), "url_prefix": URL_PREFIX, "name": "epay finance"}
    ]
    external_views: list[Any] = [  # noqa: RUF012
        {
            "name": "Finance (direct debit)",
            "href": URL_PREFIX.lstrip("/") + "/",  # relative to the UI's base URL
            "url_route": "epay-finance",
            "destination": "nav",
            "category": "browse",
        }
    ]
