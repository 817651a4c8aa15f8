"""Switch every host back to its previous healthy release: ``pyinfra -y INV rollback.py``.

``--data release=ID`` picks a release instead; on a host with several apps,
``--data app=NAME`` picks the app. The switch has no pause (the handover instance serves
while uWSGI restarts, the socket stays open) and is health-gated through nginx like a
deploy; behind load balancers the app servers switch back batch by batch like a rolling
release. Run verify.py after it.
"""

from pyinfra import host
from pyinfra.api.exceptions import PyinfraError
from pyinfra.facts.files import Directory, Link

from deploys.balancer import roll_batches
from deploys.context import in_turn, prepare_host
from deploys.fleet import SWITCH, Fleet, as_served, no_failed_host, turn
from deploys.fleet import fleet as fleet_of_inventory
from deploys.layout import Layout
from deploys.lock import hold_deploy_lock
from deploys.release import gate_release, release_gate, release_history, switch_release
from deploys.settings import Settings


def switch_back(settings: Settings, fleet: Fleet) -> None:
    """This app server back to the previous healthy release (or ``release``), in its
    rolling batch when there are load balancers."""
    layout = Layout.of(settings)
    current = (host.get_fact(Link, path=layout.current) or {}).get("link_target", "")
    history = release_history(layout.history)
    live = current.rsplit("/", 1)[-1]
    target = settings.release or release_gate.previous_release(history, live)
    if not target:
        raise PyinfraError(f"{host.name}: no previous release in {layout.history} to roll back to")
    if not host.get_fact(Directory, path=layout.release(target)):
        raise PyinfraError(f"{host.name}: release {target} is not on the host (pruned?)")
    rolling = {"_if": [no_failed_host]} if fleet.load_balancers else {}
    with in_turn(turn(fleet.batch, SWITCH)):
        switch_release(settings, release=layout.release(target), **rolling)
        gate_release(settings, restart=True, **rolling)  # whatever the app says it runs


plan = prepare_host(secrets=False)
fleet = fleet_of_inventory(plan.host.rolling_batch)
app = as_served(plan, fleet).single("rollback.py")
hold_deploy_lock()
with in_turn(1):  # the app's turn, the same on load balancers and app servers
    if fleet.balancing:
        roll_batches(app, fleet, every_batch=True)
    else:
        switch_back(app, fleet)
