"""The inventory's roles: the app servers, the load balancers in front of them (the
``load_balancers`` group) and the database server they share (the ``database_servers``
group: PostgreSQL and Redis for the apps that ask) and the backup servers that receive the
app servers' backups (the ``backup_servers`` group). Without those groups every host is an
app server serving clients itself, with its own databases, as always."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from itertools import combinations

from pyinfra import host, state
from pyinfra.api import operation
from pyinfra.api.exceptions import PyinfraError

from deploys.config.plan import HostPlan
from deploys.config.settings import Settings
from deploys.ops.context import in_turn

LOAD_BALANCERS, APP_SERVERS, DATABASE_SERVERS = "load_balancers", "app_servers", "database_servers"
BACKUP_SERVERS = "backup_servers"  # hosts that receive the app servers' backups, nothing else
# a rollout's steps: with a database server, its databases ready, then the release commands
# run by one app server; every app server's release checked; then each batch switched and
# checked from the load balancers
DATA, MIGRATED = "data", "migrated"
PREPARED, SWITCHED, CHECKED = "prepared", "switched", "checked"


@dataclass(frozen=True)
class Step:
    """A step of a rolling release: the database server's databases ready (``DATA``) and
    the release commands run on one app server (``MIGRATED``), when there is one; every app
    server ``PREPARED`` (before any batch), or a batch (its index) ``SWITCHED`` to the new
    release, or ``CHECKED`` from the load balancers."""

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
    database_server: str = ""  # its private address ("": none)
    database_host: str = ""  # its inventory name
    serving_data: bool = False  # this host is the database server
    receiving_backups: bool = False  # this host is a backup server

    @property
    def role(self) -> str:
        """What of the apps this host holds, when it is not an app server or a load
        balancer: "database" (their databases), "backups" (their backups' copies), else ""."""
        return "database" if self.serving_data else "backups" if self.receiving_backups else ""

    @property
    def runs_apps(self) -> bool:
        """Whether this host is an app server (not a load balancer, the database server nor
        a backup server)."""
        return not (self.balancing or self.serving_data or self.receiving_backups)

    @property
    def rolling(self) -> bool:
        """Whether the hosts go through the release's steps together (a barrier after each):
        behind load balancers, or around a shared database server."""
        return bool(self.load_balancers or self.database_server)

    def runs_release_commands(self) -> bool:
        """Whether this app server runs the release commands: every one, each on its own
        data, or around a shared database server the first one reached alone."""
        first = reachable(self.names)[:1]
        return not self.database_server or [h.name for h in first] == [host.name]

    def checks_here(self, step: Step) -> bool:
        """Whether ``step`` is this app server's release pre-flight: ``MIGRATED`` for the
        one that runs the release commands around a shared database (before the others
        check the release against the migrated data), else ``PREPARED``."""
        first = self.database_server and self.runs_release_commands()
        return step.kind == (MIGRATED if first else PREPARED)

    def switches_here(self, step: Step) -> bool:
        """Whether ``step`` is this app server's switch (without load balancers every app
        server is in the one batch)."""
        return step.kind == SWITCHED and host.name in self.batches[step.batch]

    @property
    def backed_up(self) -> tuple[str, ...]:
        """The inventory names of the hosts that take backups of the apps: the app servers
        and the database server."""
        return (*self.names, *([self.database_host] if self.database_host else []))

    def backs_up(self, settings: Settings, name: str = "") -> bool:
        """Whether the host ``name`` (default: this one) takes backups of the app: an app
        server, or the database server of an app whose database or Redis is there."""
        name = name or host.name
        if name == self.database_host:
            return bool(settings.postgresql or settings.redis)
        return name in self.names

    def address(self, name: str) -> str:
        """The private address of the app server (or the database server) ``name``."""
        if name == self.database_host:
            return self.database_server
        return self.app_servers[self.names.index(name)]

    def steps(self) -> Iterator[Step]:
        """The rolling release's steps, in order, the same on every host of the run: every
        app server prepared, then batch after batch, switched, then checked. Each step is
        its own turn (context.in_turn) while the caller has it: pyinfra takes operations
        made at one call site by several hosts for one, so without it the switch of the
        first batch and that of the last would be one operation, before and after the
        same barrier."""
        kinds = [Step(DATA), Step(MIGRATED)] if self.database_server else []
        kinds.append(Step(PREPARED))
        for number in range(len(self.batches)):
            kinds += [Step(SWITCHED, number), Step(CHECKED, number)]
        for position, step in enumerate(kinds, start=1):
            with in_turn(position):
                yield step

    def label(self, app_name: str, step: Step) -> str:
        """What the rollout's output calls ``step`` of ``app_name``."""
        if step.kind == DATA:
            return f"{app_name}: its database ready on {self.database_server}"
        if step.kind == MIGRATED:
            return f"{app_name}: release commands run on one app server"
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
    without load balancers or a database server (nothing rolls). Callers make it from one
    line that every host runs (deploy.py's and rollback.py's rollout loops), so the
    operation is the same."""
    if fleet.rolling:
        reached(name=f"Rollout: {fleet.label(app_name, step)}", step=fleet.label(app_name, step))


_UNREACHABLE: set = set()  # hosts that failed before any operation ran (no connection)


def no_failed_host() -> bool:
    """Whether no host has failed an operation in this run (pyinfra drops such a host): the
    condition for each later batch to switch. A host that could not even be reached is not
    a failed release; it keeps what it runs."""
    return not (state.failed_hosts - _UNREACHABLE)


def a_host_failed() -> bool:
    """Whether a host has failed an operation in this run (no_failed_host's opposite)."""
    return not no_failed_host()


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
    group, or every host that is neither a load balancer, the database server nor a backup
    server; behind
    load balancers they switch in batches of ``rolling_batch``, else all at once."""
    inventory = state.inventory
    balancers = inventory.get_group(LOAD_BALANCERS, [])
    databases = inventory.get_group(DATABASE_SERVERS, [])
    backups = inventory.get_group(BACKUP_SERVERS, [])
    servers = inventory.get_group(APP_SERVERS, None)
    if servers is None:
        others = [*balancers, *databases, *backups]
        servers = [member for member in inventory if member not in others]
    _UNREACHABLE.update(state.failed_hosts)  # before any operation runs: connections only
    serving = [member.name for member in servers if member in databases]
    if serving or len(databases) > 1:
        raise PyinfraError(
            f"inventory: {DATABASE_SERVERS} holds {len(databases)} hosts"
            + (f", {', '.join(serving)} also in {APP_SERVERS}" if serving else "")
            + ": one database server, which runs no app, serves the app servers"
        )
    roles = ((LOAD_BALANCERS, balancers), (APP_SERVERS, servers), (DATABASE_SERVERS, databases))
    for (group, members), (other, others) in combinations((*roles, (BACKUP_SERVERS, backups)), 2):
        both = [member.name for member in members if member in others]
        if both:
            raise PyinfraError(
                f"inventory: {', '.join(both)} in both {group} and {other}: a host has one role"
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
        database_server=private_address(databases[0]) if databases else "",
        database_host=databases[0].name if databases else "",
        serving_data=host in databases,
        receiving_backups=host in backups,
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
    Redis of their own (split data): they need the inventory's database server."""
    asked = [key for key in ("postgresql", "redis") if getattr(settings, key)]
    if asked and fleet.load_balancers and len(fleet.names) > 1 and not fleet.database_server:
        raise PyinfraError(
            f"{asked[0]}: behind load balancers each of the {len(fleet.names)} app servers"
            f" would get its own {' and '.join(asked)}, and the app's data would split: put a"
            f" database server in the inventory's {DATABASE_SERVERS} group (docs/databases.md)"
        )


def as_served(plan: HostPlan, fleet: Fleet) -> HostPlan:
    """The plan as this host serves it. Behind load balancers HTTPS ends at them (they hold
    the certificates): an app server serves its apps over plain HTTP, to the load balancers
    alone, and learns the scheme from their X-Forwarded-Proto. A load balancer or a backup
    server runs no app: no database or Redis of theirs either. Around a database server, an
    app server's apps reach theirs there (``database_server``; a backup server knows them
    there too: the database server backs them up)."""
    if fleet.balancing or (fleet.receiving_backups and not fleet.database_server):
        off = {"postgresql": False, "redis": False}
        return replace(plan, apps=tuple(app.model_copy(update=off) for app in plan.apps))
    if not (fleet.runs_apps or fleet.receiving_backups) or not fleet.rolling:
        return plan

    def served(app: Settings) -> Settings:
        remote = fleet.database_server if app.postgresql or app.redis else None
        https = app.https and not fleet.load_balancers
        return app.model_copy(update={"https": https, "database_server": remote})

    return replace(plan, apps=tuple(map(served, plan.apps)))
