"""Converge every host in the inventory: ``pyinfra inventories/<env>.py deploy.py``.

Preview with ``--dry --diff``; add ``-y`` when there is no terminal. A host with several
``apps`` gets the host-wide parts once, then each app in turn; ``--data app=NAME`` deploys
one of them. Hosts in the inventory's ``load_balancers`` group become nginx reverse proxies
in front of the app servers (the other hosts, or the ``app_servers`` group).
"""

from collections.abc import Callable, Iterator
from functools import partial

from deploys.config.settings import Settings
from deploys.ops.context import in_turn, prepare_host, private_upload_dir
from deploys.release.gate import install_release_gate
from deploys.release.lock import hold_deploy_lock
from deploys.release.switch import check_release, gate_release, point_current
from deploys.release.upload import create_shared_folders, upload_release
from deploys.stack.appservice import configure_app_service, write_app_environment
from deploys.stack.appuser import create_app_user
from deploys.stack.backup_server import (
    configure_backup_copies,
    configure_backup_server,
    copy_targets,
)
from deploys.stack.backups import configure_backups
from deploys.stack.balancer import balancer_rollout, configure_balancer
from deploys.stack.database_server import (
    app_database_env,
    configure_database_server,
    serve_app_data,
    served,
)
from deploys.stack.firewall import configure_firewall
from deploys.stack.fleet import (
    Fleet,
    Step,
    all_hosts_reach,
    as_served,
    no_failed_host,
    one_copy_of_data,
    processes_here,
)
from deploys.stack.fleet import fleet as fleet_of_inventory
from deploys.stack.https import prepare_certificates
from deploys.stack.nginx import NginxHost, configure_nginx, configure_nginx_host
from deploys.stack.packages import install_packages
from deploys.stack.postgresql import check_postgresql, configure_database
from deploys.stack.redis import configure_redis
from deploys.stack.retire import report_unlisted_apps, retire_apps, retiring
from deploys.stack.virtualenv import build_virtualenv, check_python, install_uv, with_resolved
from deploys.stack.workers import check_calendars, configure_processes, start_timers


def deploy_app(settings: Settings, nginx_host_wide: NginxHost, fleet: Fleet) -> Iterator[Step]:
    """One app on this app server, from its user to its health gate, step by step of the
    rolling release (Fleet.steps; the caller makes the barrier after each). Everything up
    to the release's pre-flight checks runs on every app server at once (around a database
    server, once its databases are ready, the release commands on one app server first);
    behind load balancers the switch comes in this server's batch, and only while no host
    has failed."""
    create_app_user(settings)
    venv = build_virtualenv(settings)
    release = upload_release(settings)
    env = write_app_environment(settings)
    if settings.database_server:  # its database and Redis there: their URLs, with password
        env.append(app_database_env(settings, fleet))
    create_shared_folders(settings)
    provide_datastores(settings)
    configure_backups(settings)
    here = processes_here(settings, fleet)
    rolling = {"_if": [no_failed_host]} if fleet.load_balancers else {}
    for step in fleet.steps():
        if fleet.checks_here(step):
            check_release(settings, commands=fleet.runs_release_commands())
        if fleet.switches_here(step):
            switch_app(settings, nginx_host_wide, [release, venv], env, here, **rolling)
        yield step


def provide_datastores(settings: Settings) -> None:
    """The app's own database and Redis, when it asks for them: up before its release
    commands and checks run."""
    if settings.database_server:
        return  # on the database server (stack/database_server.py)
    if settings.postgresql:
        configure_database(settings)
    if settings.redis:
        configure_redis(settings)


def serve_data(settings: Settings, _nginx: NginxHost, fleet: Fleet) -> Iterator[Step]:
    """The database server's part of the app's rollout: its database and Redis, ready
    before the app servers go on (the DATA step), and their backups; then every step
    alike."""
    if settings.postgresql or settings.redis:
        serve_app_data(settings, fleet)
        configure_backups(settings, serving=fleet.database_server)
    yield from fleet.steps()


def take_part(_settings: Settings, _nginx: NginxHost, fleet: Fleet) -> Iterator[Step]:
    """A backup server's part of an app's rollout: none but its steps."""
    yield from fleet.steps()


def switch_app(
    settings: Settings,
    nginx_host_wide: NginxHost,
    code: list,
    env: list,
    here: tuple[bool, bool],
    **global_args,
) -> None:
    """Point current at the new release, apply the service's and the site's changes, write
    the workers' and timers' units (``here``: whether this host runs workers, timers), prove
    the release healthy and move the workers onto it (or switch back), keep the timers
    running; ``global_args``: pyinfra's, for each."""
    point_current(settings, **global_args)
    configure_app_service(settings, code_changes=code, env_changes=env, **global_args)
    configure_nginx(settings, nginx_host_wide, **global_args)
    wanted = configure_processes(settings, *here, **global_args)
    gate_release(
        settings, workers=wanted.instances, workers_config=wanted.fingerprint, **global_args
    )
    start_timers(wanted, **global_args)


plan = prepare_host()
fleet = fleet_of_inventory(plan.host.rolling_batch)
plan = as_served(plan, fleet)
for app in plan.selected:  # settings the host or the inventory must confirm, before any change
    check_calendars(app)
    processes_here(app, fleet)
    one_copy_of_data(app, fleet)
    copy_targets(app)
hold_deploy_lock()
# these read facts: after the lock, whose shell answers the run's facts (no operation has run)
check_postgresql(plan)
for app in plan.selected if fleet.runs_apps else ():
    check_python(app)
plan = with_resolved(plan, fleet)  # one set of packages per app, for the app servers' Python
private_upload_dir()
install_packages(plan, fleet.role)
rollout: Callable[[Settings, NginxHost, Fleet], Iterator[Step]]  # this host's part of each app
if fleet.serving_data:
    configure_database_server(plan, fleet)
    install_release_gate()  # its backup and restore subcommands
    configure_backup_copies(served(plan))
    nginx_host_wide = NginxHost({}, {}, catch_all=False)  # it serves no site
    rollout = serve_data
elif fleet.receiving_backups:
    configure_backup_server(plan, fleet)
    nginx_host_wide = NginxHost({}, {}, catch_all=False)
    rollout = take_part
elif fleet.balancing:
    if plan.host.firewall:
        configure_firewall(plan)
    nginx_host_wide = configure_balancer(plan, fleet)
    rollout = partial(balancer_rollout, retired=plan.retired)
else:
    report_unlisted_apps(plan)  # before anything changes: may refuse a name an old app serves
    if plan.host.firewall:  # first: a later failure (say, the CA's) must not leave it off
        configure_firewall(plan, fleet.load_balancers)
    install_release_gate()
    install_uv(plan)
    configure_backup_copies(plan.apps)
    if plan.https:
        prepare_certificates(plan.host.acme_ca_bundle)
    nginx_host_wide = configure_nginx_host(plan, fleet.load_balancers, retired=retiring(plan))
    rollout = deploy_app
for position, app in enumerate(plan.selected, start=1):
    with in_turn(position):
        for step in rollout(app, nginx_host_wide, fleet):
            all_hosts_reach(fleet, app.app_name, step)  # one line for every host: a barrier
if fleet.runs_apps:
    with in_turn(len(plan.selected) + 1):
        retire_apps(plan)
