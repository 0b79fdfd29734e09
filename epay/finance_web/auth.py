"""Who may open the finance page: Airflow's auth manager decides, through a *custom view* of its own.

The page asks the auth manager ``is_authorized_custom_view(method="GET", resource_name=RESOURCE)``
(Airflow 3's hook for views a plugin defines):

- with the FAB auth manager (production), that is the permission ``can_read`` on the resource
  ``"Epay Finance"``: a ``Finance`` role holding only that permission sees the page and its downloads
  and nothing else of Airflow; Admin gets it with ``airflow roles add-perms`` or the Security UI
  (docs/finance.md);
- SimpleAuthManager (Airflow's default) lets every signed-in role see every custom view and has no
  finance role; ``FinanceAuthManager`` below is SimpleAuthManager with one more role, ``finance``
  (``[core] simple_auth_manager_users = finance_user:finance``): that role may read the finance view and
  nothing else (every other check answers no, the UI's menu is empty), and among the usual roles only
  ``admin`` may read the finance view.

This module imports Airflow: only the api-server loads it (as its auth manager)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager
from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

if TYPE_CHECKING:
    from airflow.api_fastapi.auth.managers.base_auth_manager import ResourceMethod
    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
    from airflow.api_fastapi.common.types import MenuItem

RESOURCE = "Epay Finance"
FINANCE_ROLE = "FINANCE"
ADMIN_ROLE = "ADMIN"


def is_finance(user: SimpleAuthManagerUser) -> bool:
    return (user.role or "").upper() == FINANCE_ROLE


class FinanceAuthManager(SimpleAuthManager):
    """SimpleAuthManager with a ``finance`` role that sees the finance page and nothing else."""

    def is_authorized_custom_view(
        self, *, method: ResourceMethod | str, resource_name: str, user: SimpleAuthManagerUser
    ) -> bool:
        if resource_name == RESOURCE:
            return method == "GET" and (is_finance(user) or (user.role or "").upper() == ADMIN_ROLE)
        if is_finance(user):
            return False
        return bool(super().is_authorized_custom_view(method=method, resource_name=resource_name, user=user))  # type: ignore[arg-type]

    def is_authorized_view(self, *, access_view: AccessView, user: SimpleAuthManagerUser) -> bool:
        return not is_finance(user) and bool(super().is_authorized_view(access_view=access_view, user=user))

    def filter_authorized_menu_items(
        self, menu_items: list[MenuItem], *, user: SimpleAuthManagerUser
    ) -> list[MenuItem]:
        return [] if is_finance(user) else super().filter_authorized_menu_items(menu_items, user=user)

    def is_authorized_hitl_task(self, *, assigned_users: set[str], user: SimpleAuthManagerUser) -> bool:
        return not is_finance(user) and bool(
            super().is_authorized_hitl_task(assigned_users=assigned_users, user=user)
        )


def _refuse_finance(name: str) -> Any:
    parent = getattr(SimpleAuthManager, name)

    def check(self: SimpleAuthManager, *args: Any, user: SimpleAuthManagerUser, **kwargs: Any) -> bool:
        if is_finance(user):
            return False
        return bool(parent(self, *args, user=user, **kwargs))

    check.__name__ = name
    check.__doc__ = f"{name} of SimpleAuthManager; no for the finance role."
    return check


for _name in (
    "is_authorized_configuration",
    "is_authorized_connection",
    "is_authorized_dag",
    "is_authorized_asset",
    "is_authorized_asset_alias",
    "is_authorized_pool",
    "is_authorized_team",
    "is_authorized_variable",
):
    setattr(FinanceAuthManager, _name, _refuse_finance(_name))
