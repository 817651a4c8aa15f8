"""Where everything lives on the host, derived from the settings in one place."""

from __future__ import annotations

from dataclasses import dataclass

from deploys.config.settings import Settings

# the release checks, host-wide: files/release_gate.py, which imports deploys/hostside from
# its own folder (so the package keeps that name there)
GATE_SCRIPT = "/usr/local/lib/flask-deploy/release_gate.py"
GATE_PACKAGE = "/usr/local/lib/flask-deploy/hostside"
# runs a worker's or timer's command in the release ``current`` names when it starts
RELEASE_LAUNCHER = "/usr/local/lib/flask-deploy/run-in-release"
NGINX_UNIT = "nginx.service"
BACKUPS = "/var/backups/flask-deploy"  # root 0700: every app's backups
UV_CACHE = "/var/cache/flask-deploy/uv"  # root's: the wheels uv fetched, for the next venvs


@dataclass(frozen=True)
class Layout:
    """Paths on the host for one app."""

    app: str

    @classmethod
    def of(cls, settings: Settings) -> Layout:
        return cls(settings.app_name)

    @property
    def root(self) -> str:
        return f"/srv/{self.app}"

    @property
    def releases(self) -> str:
        return f"{self.root}/releases"

    @property
    def current(self) -> str:
        return f"{self.root}/current"

    @property
    def venvs(self) -> str:
        return f"{self.root}/venvs"

    def release(self, release_id: str) -> str:
        """A release: its code in ``app/`` (with links to the shared paths), a ``venv`` link to
        the virtualenv it runs with, nginx's copy of the static folders in ``static/``."""
        return f"{self.releases}/{release_id}"

    @property
    def live_venv(self) -> str:
        """The virtualenv of the live release."""
        return f"{self.current}/venv"

    @property
    def history(self) -> str:
        """Ids of the releases that went live healthy, oldest first."""
        return f"{self.state}/releases.history"

    @property
    def state(self) -> str:
        """Records of what configuration each service last applied (see stamps.py);
        root only (mode 700)."""
        return f"{self.root}/state"

    gate_script = GATE_SCRIPT

    @property
    def service_record(self) -> str:
        """Root's record of what the service's current run loaded: ``INVOCATION_ID RELEASE``,
        written as root by the unit before each start (appservice.record_command)."""
        return f"{self.state}/service.record"

    def stamp(self, service: str) -> str:
        """Fingerprints of the configuration ``service`` last applied (see stamps.py)."""
        return f"{self.state}/{service}.applied"

    @property
    def etc(self) -> str:
        return f"/etc/{self.app}"

    @property
    def ini(self) -> str:
        return f"{self.etc}/uwsgi.ini"

    @property
    def env_file(self) -> str:
        return f"{self.etc}/env"

    @property
    def database_env(self) -> str:
        """On an app server of a database server: the URLs of its database and Redis there,
        with their password (written hidden by the deploy, like env; root:<app> 0640)."""
        return f"{self.etc}/database.env"

    @property
    def pip_conf(self) -> str:
        """pip's settings for the venv builds (index credentials): root only."""
        return f"{self.etc}/pip.conf"

    @property
    def pip_netrc(self) -> str:
        """Private index credentials for pip and uv: root only."""
        return f"{self.etc}/pip.netrc"

    @property
    def uv_toml(self) -> str:
        """uv's settings for the venv builds (the index URLs, no credentials): root only."""
        return f"{self.etc}/uv.toml"

    @property
    def unit_name(self) -> str:
        return f"{self.app}.service"

    @property
    def unit(self) -> str:
        return f"/etc/systemd/system/{self.unit_name}"

    @property
    def sandbox(self) -> str:
        """Drop-in with the app's identity and sandbox; every unit that runs app code
        (the service, the release checks) takes its settings from this one file."""
        return f"{self.unit}.d/sandbox.conf"

    @property
    def handover_unit_name(self) -> str:
        """A second uWSGI of the app on the same socket, up only while the service restarts
        onto a new release or configuration (release_gate.py), so requests never wait."""
        return f"{self.app}-handover.service"

    @property
    def handover_unit(self) -> str:
        return f"/etc/systemd/system/{self.handover_unit_name}"

    @property
    def handover_drop_ins(self) -> str:
        """The handover's drop-in folder: a link to the service's, so it runs exactly like
        the service (the sandbox, and any drop-in the operator adds)."""
        return f"{self.handover_unit}.d"

    @property
    def handover_stats_socket(self) -> str:
        """The handover's stats server, in its own private runtime folder."""
        return f"/run/{self.app}-handover/stats.sock"

    @property
    def socket_unit_name(self) -> str:
        return f"{self.app}.socket"

    @property
    def unit_names(self) -> tuple[str, ...]:
        """The app's units: its service, socket and handover."""
        return (self.unit_name, self.socket_unit_name, self.handover_unit_name)

    @property
    def units_read_together(self) -> tuple[str, ...]:
        """The app's units and nginx's: the deploy reads their state in one systemctl call
        (UnitStatus's ``along``)."""
        return (*self.unit_names, NGINX_UNIT)

    def worker_template(self, name: str) -> str:
        """The unit template of the worker ``name``; its instances are ``@1``, ``@2``..."""
        return f"{self.app}-worker-{name}@.service"

    def worker_instances(self, name: str, count: int) -> tuple[str, ...]:
        """The units of the worker ``name``'s ``count`` instances."""
        return tuple(f"{self.app}-worker-{name}@{n}.service" for n in range(1, count + 1))

    def timer(self, name: str) -> str:
        """The timer ``name``'s units, without suffix: ``.timer`` and its ``.service``."""
        return f"{self.app}-timer-{name}"

    @property
    def process_patterns(self) -> tuple[str, str]:
        """Unit name patterns covering every worker and timer of the app."""
        return (f"{self.app}-worker-*", f"{self.app}-timer-*")

    @property
    def workers_stamp(self) -> str:
        """The workers' applied configuration and the release they were started on."""
        return self.stamp("workers")

    @staticmethod
    def system_unit(name: str) -> str:
        """Where the unit file ``name`` lives."""
        return f"/etc/systemd/system/{name}"

    @property
    def redis_unit_name(self) -> str:
        """The app's own Redis (``redis = true``): a unit of the app's user and sandbox."""
        return f"{self.app}-redis.service"

    @property
    def redis_conf(self) -> str:
        """Its configuration (root-owned, the app's group may read it)."""
        return f"{self.etc}/redis.conf"

    @property
    def redis_socket(self) -> str:
        """Its one way in: a unix socket in a runtime folder of the app's user only."""
        return f"/run/{self.app}-redis/redis.sock"

    @property
    def redis_data(self) -> str:
        """Its snapshots (systemd StateDirectory=, the app's user only)."""
        return f"/var/lib/{self.app}-redis"

    @property
    def backups(self) -> str:
        """The app's backups, one folder each (root only: the app never reads them)."""
        return f"{BACKUPS}/{self.app}"

    @property
    def backup_unit(self) -> str:
        """The unit that takes one backup, without suffix: ``.service`` and its ``.timer``."""
        return f"{self.app}-backup"

    @property
    def socket_unit(self) -> str:
        return f"/etc/systemd/system/{self.socket_unit_name}"

    @property
    def socket(self) -> str:
        """The uwsgi socket nginx connects to, made by systemd (root:www-data 660) in a
        root-owned folder: the app cannot touch it, only nginx's user can connect."""
        return f"/run/flask-deploy/{self.app}.sock"

    @property
    def run_dir(self) -> str:
        """The service's private runtime folder (app only, mode 700)."""
        return f"/run/{self.app}"

    @property
    def stats_socket(self) -> str:
        """uWSGI's stats server: which release the master runs, and its workers."""
        return f"{self.run_dir}/stats.sock"

    @property
    def data(self) -> str:
        """The app's persistent data (systemd StateDirectory=, app only, mode 750)."""
        return f"/var/lib/{self.app}"

    def shared(self, path: str) -> str:
        """Where a shared path (settings.shared_paths) lives: in the data directory."""
        return f"{self.data}/{path}"

    def live_static(self, folder: str) -> str:
        """nginx's copy of a static folder in the live release (group www-data): nginx
        reads only these, never the app's code."""
        return f"{self.current}/static/{folder}"

    @property
    def certificate(self) -> str:
        """The app's certificate, as certbot keeps it (lineage named after the app)."""
        return f"/etc/letsencrypt/live/{self.app}/cert.pem"

    @property
    def renewal(self) -> str:
        """certbot's renewal settings for the app's certificate (its CA among them)."""
        return f"/etc/letsencrypt/renewal/{self.app}.conf"

    @property
    def fullchain(self) -> str:
        return f"/etc/letsencrypt/live/{self.app}/fullchain.pem"

    @property
    def private_key(self) -> str:
        return f"/etc/letsencrypt/live/{self.app}/privkey.pem"

    @property
    def site_error_log(self) -> str:
        """nginx's error log for the app's site."""
        return f"/var/log/nginx/{self.app}.error.log"

    @property
    def site_access_log(self) -> str:
        """On a load balancer, nginx's access log for the app's site (with the upstream's
        address, status and time); Debian's logrotate rotates it with nginx's others."""
        return f"/var/log/nginx/{self.app}.access.log"

    @property
    def site_available(self) -> str:
        return f"/etc/nginx/sites-available/{self.app}"

    @property
    def site_enabled(self) -> str:
        return f"/etc/nginx/sites-enabled/{self.app}"
