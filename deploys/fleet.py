"""The inventory's roles: the app servers, and the load balancers in front of them (the
``load_balancers`` group). Without that group every host is an app server serving clients
itself, as always."""

from __future__ import annotations

from dataclasses import dataclass, replace

from pyinfra import host, state

from deploys.plan import HostPlan

LOAD_BALANCERS, APP_SERVERS = "load_balancers", "app_servers"


DRAIN, SWITCH, RESTORE = 1, 2, 3  # a rolling batch's steps, in order


@dataclass(frozen=True)
class Fleet:
    """The addresses of the load balancers and app servers, the app servers (inventory
    names) in rolling batches, and this host's role."""

    load_balancers: tuple[str, ...]  # their private addresses
    app_servers: tuple[str, ...]  # their private addresses, in the inventory's order
    balancing: bool  # this host is a load balancer
    batches: tuple[tuple[str, ...], ...] = ()  # app servers' names, switched batch by batch
    names: tuple[str, ...] = ()  # the app servers' inventory names, as app_servers

    @property
    def batch(self) -> int:
        """This app server's batch (0 without load balancers: all switch together)."""
        return next((i for i, names in enumerate(self.batches) if host.name in names), 0)

    def address(self, name: str) -> str:
        """The private address of the app server ``name``."""
        return self.app_servers[self.names.index(name)]


def turn(batch: int, step: int) -> int:
    """The in_turn position of a rolling batch's step (DRAIN, SWITCH or RESTORE)."""
    return 3 * batch + step


_UNREACHABLE: set = set()  # hosts that failed before any operation ran (no connection)


def no_failed_host() -> bool:
    """Whether no host has failed an operation in this run (pyinfra drops such a host): the
    condition for each later batch to switch. A host that could not even be reached is not
    a failed release; it keeps what it runs."""
    return not (state.failed_hosts - _UNREACHABLE)


def batch_size(rolling_batch: int | str, servers: int) -> int:
    """App servers per batch: a count, or a percentage of them (at least one)."""
    if isinstance(rolling_batch, str):
        return max(1, servers * int(rolling_batch.rstrip("%")) // 100)
    return min(rolling_batch, servers)


def private_address(member) -> str:
    """How the other hosts reach ``member``: its ``private_address``, else its name."""
    return member.data.get("private_address") or member.name


def fleet(rolling_batch: int | str = 1) -> Fleet:
    """The fleet as this run's inventory describes it. App servers: the ``app_servers``
    group, or every host that is not a load balancer; behind load balancers they switch in
    batches of ``rolling_batch``, else all at once."""
    inventory = state.inventory
    balancers = inventory.get_group(LOAD_BALANCERS, [])
    servers = inventory.get_group(APP_SERVERS, None)
    if servers is None:
        servers = [member for member in inventory if member not in balancers]
    _UNREACHABLE.update(state.failed_hosts)  # before any operation runs: connections only
    names = tuple(s.name for s in servers)
    size = batch_size(rolling_batch, len(names)) if balancers else max(len(names), 1)
    return Fleet(
        load_balancers=tuple(private_address(b) for b in balancers),
        app_servers=tuple(private_address(s) for s in servers),
        balancing=host in balancers,
        batches=tuple(names[i : i + size] for i in range(0, len(names), size)),
        names=names,
    )


def as_served(plan: HostPlan, fleet: Fleet) -> HostPlan:
    """The plan as this host serves it. Behind load balancers HTTPS ends at them (they hold
    the certificates): an app server serves its apps over plain HTTP, to the load balancers
    alone, and learns the scheme from their X-Forwarded-Proto."""
    if not fleet.load_balancers or fleet.balancing:
        return plan
    return replace(plan, apps=tuple(app.model_copy(update={"https": False}) for app in plan.apps))
