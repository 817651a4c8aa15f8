"""Converge every host in the inventory: ``pyinfra inventories/<env>.py deploy.py``.

Preview with ``--dry --diff``; add ``-y`` when there is no terminal.
"""

from deploys.appservice import configure_app_service, write_app_environment
from deploys.appuser import create_app_user
from deploys.context import prepare_host, private_upload_dir
from deploys.firewall import configure_firewall
from deploys.https import prepare_certificates
from deploys.lock import hold_deploy_lock
from deploys.nginx import configure_nginx
from deploys.packages import install_packages
from deploys.release import (
    create_shared_folders,
    gate_release,
    install_release_gate,
    switch_release,
    upload_release,
)
from deploys.virtualenv import build_virtualenv

settings = prepare_host()
hold_deploy_lock(settings.app_name)

private_upload_dir()
install_packages(settings)
if settings.firewall:  # first: a later failure (say, the CA's) must not leave it off
    configure_firewall(settings)
create_app_user(settings)
venv = build_virtualenv(settings)
release = upload_release(settings)
install_release_gate(settings)
env = write_app_environment(settings)
create_shared_folders(settings)
switch_release(settings)
configure_app_service(settings, code_changes=[release, venv], env_changes=env)
if settings.https:
    prepare_certificates(settings)
configure_nginx(settings)
gate_release(settings)
