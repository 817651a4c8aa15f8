"""The inventory's roles: the app servers, and the load balancers in front of them (the
``load_balancers`` group). Without that group every host is an app server serving clients
itself, as always."""

from __future__ import annotations

from dataclasses import dataclass

from pyinfra import host, state

from deploys.plan import HostPlan
from deploys.settings import SettingsError

LOAD_BALANCERS, APP_SERVERS = "load_balancers", "app_servers"


@dataclass(frozen=True)
class Fleet:
    """The addresses of the load balancers and app servers, and this host's role."""

    load_balancers: tuple[str, ...]  # their private addresses
    app_servers: tuple[str, ...]  # their private addresses, in the inventory's order
    balancing: bool  # this host is a load balancer


def private_address(member) -> str:
    """How the other hosts reach ``member``: its ``private_address``, else its name."""
    return member.data.get("private_address") or member.name


def fleet() -> Fleet:
    """The fleet as this run's inventory describes it. App servers: the ``app_servers``
    group, or every host that is not a load balancer."""
    inventory = state.inventory
    balancers = inventory.get_group(LOAD_BALANCERS, [])
    servers = inventory.get_group(APP_SERVERS, None)
    if servers is None:
        servers = [member for member in inventory if member not in balancers]
    return Fleet(
        load_balancers=tuple(private_address(b) for b in balancers),
        app_servers=tuple(private_address(s) for s in servers),
        balancing=host in balancers,
    )


def refuse_unsupported(plan: HostPlan, fleet: Fleet) -> None:
    """What load balancers cannot do yet, refused before any host is touched."""
    if fleet.load_balancers and plan.https:
        raise SettingsError(
            "https: with load_balancers the certificate belongs on the load balancers, which"
            " this deploy does not do yet: keep https off behind load balancers (and terminate"
            " TLS in front of them), or deploy without the load_balancers group"
        )
