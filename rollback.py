"""Switch every host back to its previous healthy release: ``pyinfra -y INV rollback.py``.

``--data release=ID`` picks a release instead; on a host with several apps,
``--data app=NAME`` picks the app. The switch has no pause (the handover instance serves
while uWSGI restarts, the socket stays open) and is health-gated through nginx like a
deploy; behind load balancers the app servers switch back batch by batch like a rolling
release. After a rollout that stopped part-way (the app servers run different releases),
the servers it switched go back to the release the others run, and those stay as they are.
Run verify.py after it.
"""

from collections.abc import Iterator
from typing import Any

from pyinfra import host
from pyinfra.api.exceptions import PyinfraError
from pyinfra.facts.files import Directory

from deploys.config.layout import Layout
from deploys.config.settings import Settings
from deploys.hostside.rules import previous_release
from deploys.ops.context import in_turn, prepare_host
from deploys.release.live import current_release, release_history
from deploys.release.lock import hold_deploy_lock
from deploys.release.switch import gate_release, switch_release
from deploys.stack.balancer import balancer_rollout
from deploys.stack.fleet import (
    Fleet,
    Step,
    all_hosts_reach,
    as_served,
    no_failed_host,
    processes_here,
    reachable,
)
from deploys.stack.fleet import fleet as fleet_of_inventory
from deploys.stack.nginx import configure_nginx_host
from deploys.stack.workers import processes


def fleet_target(settings: Settings, fleet: Fleet) -> str | None:
    """After a rollout that stopped part-way, the app servers run different releases: the
    one that the others switched from (it comes before each other one in the history of
    the servers running that one), for every server to go back to; None when they all run
    one. PyinfraError when no release is older than all the others."""
    layout = Layout.of(settings)
    servers = reachable(fleet.names)
    runs = [
        (current_release(settings.app_name, s), release_history(layout.history, s)) for s in servers
    ]
    lives = {live for live, _ in runs if live}
    if len(lives) < 2:
        return None

    def older(release: str, than: str) -> bool:
        return any(
            live == than and release in history[: history.index(than)]
            for live, history in runs
            if than in history
        )

    oldest = [x for x in sorted(lives) if all(older(x, y) for y in lives - {x})]
    if len(oldest) != 1:
        raise PyinfraError(
            f"rollback.py: the app servers run different releases ({', '.join(sorted(lives))})"
            " and none came before the others: name one with --data release=ID"
        )
    return oldest[0]


def switch_back(settings: Settings, fleet: Fleet) -> Iterator[Step]:
    """This app server back to the previous healthy release (or ``release``; after a
    rollout that stopped part-way, the release the servers it did not reach run: see
    fleet_target), step by step of the rolling release (Fleet.steps): in its batch, while
    no host has failed. A server already there stays as it is."""
    layout = Layout.of(settings)
    history = release_history(layout.history)
    live = current_release(settings.app_name)
    target = settings.release or fleet_target(settings, fleet) or previous_release(history, live)
    if not target:
        raise PyinfraError(f"{host.name}: no previous release in {layout.history} to roll back to")
    if not host.get_fact(Directory, path=layout.release(target)):
        raise PyinfraError(f"{host.name}: release {target} is not on the host (pruned?)")
    rolling: dict[str, Any] = {"_if": [no_failed_host]} if fleet.load_balancers else {}
    workers = processes(settings, *processes_here(settings, fleet)).instances
    for step in fleet.steps():
        if fleet.switches_here(step) and target != live:
            switch_release(settings, release=layout.release(target), **rolling)
            # whatever the app says it runs; its workers move back with it
            gate_release(settings, restart=True, workers=workers, **rolling)
        yield step


plan = prepare_host(secrets=False)
fleet = fleet_of_inventory(plan.host.rolling_batch)
app = as_served(plan, fleet).single("rollback.py")
hold_deploy_lock()
with in_turn(1):  # the app's turn, the same on load balancers and app servers
    if fleet.balancing:  # the sites stay, the app servers' rotation may change
        shared = configure_nginx_host(plan, servers=fleet.app_servers)
        steps = balancer_rollout(app, shared, fleet, rollback=True)
    else:  # a database server has no part in it but its turns
        steps = fleet.steps() if fleet.serving_data else switch_back(app, fleet)
    for step in steps:
        all_hosts_reach(fleet, app.app_name, step)  # one line for every host: a barrier
