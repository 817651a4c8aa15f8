"""Switch every host back to its previous healthy release: ``pyinfra -y INV rollback.py``.

``--data release=ID`` picks a release instead; on a host with several apps,
``--data app=NAME`` picks the app. The switch is graceful (uWSGI reloads, the
socket stays open) and health-gated through nginx like a deploy; run verify.py after it.
"""

from pyinfra import host
from pyinfra.api.exceptions import PyinfraError
from pyinfra.facts.files import Directory, Link

from deploys.context import prepare_host
from deploys.layout import Layout
from deploys.lock import hold_deploy_lock
from deploys.release import gate_release, release_gate, release_history, switch_release

settings = prepare_host(secrets=False).single("rollback.py")
hold_deploy_lock()
layout = Layout.of(settings)
current = (host.get_fact(Link, path=layout.current) or {}).get("link_target", "")
history = release_history(layout.history)
live = current.rsplit("/", 1)[-1]
target = settings.release or release_gate.previous_release(history, live)
if not target:
    raise PyinfraError(f"{host.name}: no previous release in {layout.history} to roll back to")
if not host.get_fact(Directory, path=layout.release(target)):
    raise PyinfraError(f"{host.name}: release {target} is not on the host (pruned?)")

switch_release(settings, release=layout.release(target))
gate_release(settings)
