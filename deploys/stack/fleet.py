"""The inventory's roles: the app servers, and the load balancers in front of them (the
``load_balancers`` group). Without that group every host is an app server serving clients
itself, as always."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

from pyinfra import host, state
from pyinfra.api import operation
from pyinfra.api.exceptions import PyinfraError

from deploys.config.plan import HostPlan
from deploys.config.settings import Settings
from deploys.ops.context import in_turn

LOAD_BALANCERS, APP_SERVERS = "load_balancers", "app_servers"
PREPARED, SWITCHED, CHECKED = "prepared", "switched", "checked"  # a rollout's steps


@dataclass(frozen=True)
class Step:
    """A step of a rolling release: every app server ``PREPARED`` (before any batch), or a
    batch (its index) ``SWITCHED`` to the new release, or ``CHECKED`` from the load
    balancers."""

    kind: str
    batch: int = -1


@dataclass(frozen=True)
class Fleet:
    """The addresses of the load balancers and app servers, the app servers (inventory
    names) in rolling batches, and this host's role."""

    load_balancers: tuple[str, ...]  # their private addresses
    app_servers: tuple[str, ...]  # their private addresses, in the inventory's order
    balancing: bool  # this host is a load balancer
    batches: tuple[tuple[str, ...], ...] = ()  # app servers' names, switched batch by batch
    names: tuple[str, ...] = ()  # the app servers' inventory names, as app_servers

    def switches_here(self, step: Step) -> bool:
        """Whether ``step`` is this app server's switch (without load balancers every app
        server is in the one batch)."""
        return step.kind == SWITCHED and host.name in self.batches[step.batch]

    def address(self, name: str) -> str:
        """The private address of the app server ``name``."""
        return self.app_servers[self.names.index(name)]

    def steps(self) -> Iterator[Step]:
        """The rolling release's steps, in order, the same on every host of the run: every
        app server prepared, then batch after batch, switched, then checked. Each step is
        its own turn (context.in_turn) while the caller has it: pyinfra takes operations
        made at one call site by several hosts for one, so without it the switch of the
        first batch and that of the last would be one operation, before and after the
        same barrier."""
        kinds = [Step(PREPARED)]
        for number in range(len(self.batches)):
            kinds += [Step(SWITCHED, number), Step(CHECKED, number)]
        for position, step in enumerate(kinds, start=1):
            with in_turn(position):
                yield step

    def label(self, app_name: str, step: Step) -> str:
        """What the rollout's output calls ``step`` of ``app_name``."""
        if step.kind == PREPARED:
            return f"{app_name}: every app server prepared"
        batch = ", ".join(self.batches[step.batch])
        if step.kind == SWITCHED:
            return f"{app_name}: batch {step.batch + 1} ({batch}) switched"
        return f"{app_name}: batch {step.batch + 1} ({batch}) checked from the load balancers"


@operation()
def reached(step: str):
    """A point of the rolling release that every host of the run reaches before any host
    goes past it (no command). pyinfra runs each operation on all its hosts at once and
    orders a host's operations as the host made them; the same operation made by every host
    (the same call site, the same count of calls before it) is therefore a barrier between
    what each host made before and after it."""
    yield from ()


def all_hosts_reach(fleet: Fleet, app_name: str, step: Step) -> None:
    """The barrier after ``step`` of ``app_name`` (see reached), on every host alike; none
    without load balancers (nothing rolls). Callers make it from one line that every host
    runs (deploy.py's and rollback.py's rollout loops), so the operation is the same."""
    if fleet.load_balancers:
        reached(name=f"Rollout: {fleet.label(app_name, step)}", step=fleet.label(app_name, step))


_UNREACHABLE: set = set()  # hosts that failed before any operation ran (no connection)


def no_failed_host() -> bool:
    """Whether no host has failed an operation in this run (pyinfra drops such a host): the
    condition for each later batch to switch. A host that could not even be reached is not
    a failed release; it keeps what it runs."""
    return not (state.failed_hosts - _UNREACHABLE)


def reachable(names) -> list:
    """The hosts of the inventory named ``names`` that this run reached (and has not
    dropped)."""
    return [h for h in map(state.inventory.get_host, names) if h in state.active_hosts]


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
    both = [member.name for member in servers if member in balancers]
    if both:
        raise PyinfraError(
            f"inventory: {', '.join(both)} in both {LOAD_BALANCERS} and {APP_SERVERS}:"
            " a host is a load balancer or an app server, not both"
        )
    batches = {repr(member.data.get("rolling_batch")) for member in inventory}
    if balancers and len(batches) > 1:
        raise PyinfraError(
            f"rolling_batch: the hosts of the fleet differ ({', '.join(sorted(batches))}):"
            " every host must see the same batches; set it once for all (group_data/all.py)"
        )
    names = tuple(s.name for s in servers)
    size = batch_size(rolling_batch, len(names)) if balancers else max(len(names), 1)
    return Fleet(
        load_balancers=tuple(private_address(b) for b in balancers),
        app_servers=tuple(private_address(s) for s in servers),
        balancing=host in balancers,
        batches=tuple(names[i : i + size] for i in range(0, len(names), size)),
        names=names,
    )


def processes_here(settings: Settings, fleet: Fleet) -> tuple[bool, bool]:
    """Whether this app server runs the app's workers (every app server, or those of the
    ``worker_hosts`` group) and its timers (one host: the first of the ``timer_hosts``
    group, or of the app servers; a scheduled job must not run once per server).
    PyinfraError when a group names no app server to run them."""
    inventory = state.inventory

    def members(setting: str) -> list[str]:
        group = getattr(settings, setting)
        names = [h.name for h in inventory.get_group(group, [])]
        if not set(names) & set(fleet.names):
            raise PyinfraError(
                f"{setting}: the inventory group {group!r} holds no app server (it is missing,"
                " empty or load balancers only): name a group of app servers, or leave it unset"
            )
        return names

    workers = not settings.worker_hosts or host.name in members("worker_hosts")
    timer_hosts = members("timer_hosts") if settings.timer_hosts else list(fleet.names)
    if timer_hosts and timer_hosts[0] not in fleet.names:
        raise PyinfraError(
            f"timer_hosts: its first host, {timer_hosts[0]}, is no app server: the timers run"
            " on the group's first host, so put an app server first"
        )
    return workers, timer_hosts[:1] == [host.name]


def one_copy_of_data(settings: Settings, fleet: Fleet) -> None:
    """PyinfraError when the app servers behind load balancers would each get a database or
    Redis of their own (split data: a fleet's shared database server is not built yet)."""
    asked = [key for key in ("postgresql", "redis") if getattr(settings, key)]
    if asked and fleet.load_balancers and len(fleet.names) > 1:
        raise PyinfraError(
            f"{asked[0]}: behind load balancers each of the {len(fleet.names)} app servers"
            f" would get its own {' and '.join(asked)}, and the app's data would split:"
            " a database server shared by a fleet is not supported yet (docs/databases.md);"
            " set DATABASE_URL / REDIS_URL in env to a server of yours instead"
        )


def as_served(plan: HostPlan, fleet: Fleet) -> HostPlan:
    """The plan as this host serves it. Behind load balancers HTTPS ends at them (they hold
    the certificates): an app server serves its apps over plain HTTP, to the load balancers
    alone, and learns the scheme from their X-Forwarded-Proto. A load balancer runs no app:
    no database or Redis of theirs either."""
    if not fleet.load_balancers:
        return plan
    off = {"postgresql": False, "redis": False} if fleet.balancing else {"https": False}
    return replace(plan, apps=tuple(app.model_copy(update=off) for app in plan.apps))
