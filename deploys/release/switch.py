"""The steps of a release going live, in order: pre-flight checks, the atomic switch of
``current``, the health gate (deploy.py and rollback.py make them, one app server's batch
at a time on a fleet)."""

from __future__ import annotations

from deploys.config.fingerprint import release_id
from deploys.config.layout import Layout
from deploys.config.settings import Settings
from deploys.ops.fileops import link_switched
from deploys.ops.typed import deploy
from deploys.release.gate import release_checked, release_gated


def _target(settings: Settings, release: str | None) -> str:
    """The release a switch goes to: ``release``, else the one this deploy uploads."""
    return release or Layout.of(settings).release(release_id(settings))


@deploy("Release pre-flight")
def check_release(settings: Settings, release: str | None = None, commands: bool = True):
    """Check the release before it may go live. The new release this deploy uploaded (the
    default) runs the release commands first (unless ``commands`` is false: another app
    server runs them on the data they share); a release rolled back to does not (its data
    changes were made when it was new, and a migration tool may refuse to run an older
    release's migrations against newer data)."""
    layout = Layout.of(settings)
    release_checked(
        name=f"{_target(settings, release)} passes its checks",
        layout=layout,
        release=_target(settings, release),
        settings=settings,
        commands=settings.release_command if release is None and commands else [],
    )


@deploy("Release switch")
def point_current(settings: Settings, release: str | None = None):
    """Point ``current`` at the release atomically."""
    layout = Layout.of(settings)
    target = _target(settings, release)
    link_switched(name=f"Point {layout.current} at {target}", path=layout.current, target=target)


def switch_release(settings: Settings, release: str | None = None, **global_args) -> None:
    """Check the release, then point ``current`` at it (see check_release);
    ``global_args``: pyinfra's, for both."""
    check_release(settings, release, **global_args)
    point_current(settings, release, **global_args)


@deploy("Release health gate")
def gate_release(
    settings: Settings,
    restart: bool = False,
    workers: tuple[str, ...] = (),
    workers_config: str | None = None,
):
    """Serve the current release and prove it healthy through nginx, then move the
    ``workers`` (instance units) onto it, or switch back; ``restart``: restart the service
    onto it whatever it runs (a rollback); ``workers_config``: their configuration's
    fingerprint (None: the one applied)."""
    release_gated(
        name="Live release is healthy through nginx" + (", workers on it" if workers else ""),
        layout=Layout.of(settings),
        settings=settings,
        restart=restart,
        workers=workers,
        workers_config=workers_config,
    )
