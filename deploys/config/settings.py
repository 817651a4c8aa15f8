"""The deploy's settings: defaults in one place, validated once per host before anything runs.

Settings live in pyinfra host/group data (inventory, ``inventories/group_data/*.py`` or
``--data key=value``). Keys that belong to pyinfra itself (connector keys such as ``ssh_*``
and ``_*`` global arguments) are left alone; any other key must be a field below, so a typo
is an error naming the key, not a silently ignored setting.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from deploys.config.dependencies import requirements_text
from deploys.config.processes import (
    PROCFILE,
    Calendar,
    ProcessName,
    Timer,
    Worker,
    as_table,
    calendar_problem,
    procfile_workers,
)
from deploys.config.secrets import is_unset
from deploys.config.shipping import AppFiles
from deploys.config.validation import (
    AcmeUrl,
    DebianPackage,
    GroupName,
    HostAddress,
    HostName,
    HostPath,
    PipRequirement,
    UfwRule,
    UnixName,
    count_or_percentage,
    env_names,
    env_values_set,
    gitignore_patterns,
    https_problems,
    memory_size,
    module_file,
    module_form,
    module_problems,
    names_as_served,
    no_spaces,
    not_host_wide,
    one_line_command,
    one_line_commands,
    one_or_many,
    requirements_problems,
    shared_paths_inside,
    static_form,
    static_problems,
    url_path,
)

PACKAGE = Path(__file__).resolve().parents[1]  # deploys/
CHECKOUT = PACKAGE.parent if (PACKAGE.parent / "deploy.py").is_file() else None


def project_root() -> Path:
    """What a relative ``app_src`` is taken from: the checkout that holds deploy.py, or with
    the package installed (``pip install .``) the working directory."""
    return CHECKOUT or Path.cwd()


def shipped(folder: str) -> Path:
    """templates/ or files/: beside the package in a checkout, inside it once installed
    (pyproject.toml's package-dir)."""
    return PACKAGE.parent / folder if CHECKOUT else PACKAGE / folder


# Redis' choices when its memory is full: noeviction refuses writes (a queue loses nothing)
MaxmemoryPolicy = Literal[
    "noeviction",
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
]

SAMPLE_APP_GREETING = "Hello There!"
PYINFRA_KEY_PREFIXES = (
    "_",
    "ssh_",
    "local_",
    "docker_",
    "dockerssh_",
    "chroot_",
    "winrm_",
    "podman_",
    "vagrant_",
    "terraform_",
    "mech_",
)

# never echoed in errors; commands are not secrets (they show in the process list and logs)
SECRET_KEYS = {"env", "pip_index_url", "pip_extra_index_url"}


# fields the deploy derives, never set by hand: what sets them
DERIVED = {
    "database_server": "set by the inventory's database_servers group, not by hand",
    "resolved": "the resolved set of packages the deploy makes, not a setting",
}

# settings that take one value or a list of them
LIST_FIELDS = (
    "server_name",
    "python_packages",
    "apt_packages",
    "firewall_allow",
    "pip_extra_index_url",
    "exclude",
    "shared_paths",
    "release_command",
)


def applied(rule, *fields: str, mode: Literal["before", "after"] = "after"):
    """A rule of validation.py as a pydantic validator of ``fields``."""
    return field_validator(*fields, mode=mode)(staticmethod(rule))


class Settings(BaseModel):
    """Everything the deploy can be told; see docs/settings.md."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    app_name: UnixName = "myproject"
    app_src: str = "app"
    app_module: str = "wsgi:app"
    server_name: list[HostName] = ["_"]
    app_user: UnixName | None = None
    processes: int = Field(5, ge=1, le=512)
    threads: int = Field(1, ge=1, le=64)
    listen_backlog: int = Field(100, ge=16, le=65535)
    harakiri: int = Field(30, ge=1, le=3600)
    buffer_size: int = Field(32768, ge=4096, le=65535)
    request_log: bool = False
    client_max_body_size: str = Field("10m", pattern=r"^\d+[kmg]?$")
    requirements: str | None = None  # None: requirements.txt, else pyproject.toml's
    dependencies_lock: bool = False  # true: an app without a lock is refused
    installer: Literal["uv", "pip"] = "uv"  # what installs the venv's packages on the host
    exclude: list[str] = []
    shared_paths: list[str] = []
    static: dict[str, str] = {}
    static_expires: str = Field("1h", pattern=r"^(off|max|\d+[smhdwMy]?)$")
    release_command: list[str] = []
    command: str | None = None  # run.py's one-off command
    log_lines: int = Field(50, ge=1, le=100000)  # logs.py
    python_packages: list[PipRequirement] = []
    apt_packages: list[DebianPackage] = []  # Debian packages the app needs (build or run)
    uwsgi_package: PipRequirement = "pyuwsgi==2.0.30.post1"
    uwsgi_from_source: bool = False
    env: dict[str, SecretStr] = {}  # SecretStr: masked in every repr, e.g. pyinfra --debug
    firewall: bool = True
    ssh_allow: UfwRule = "OpenSSH"
    firewall_allow: list[UfwRule] = []
    pip_index_url: SecretStr | None = None  # may hold user:token
    pip_extra_index_url: list[SecretStr] = []
    pip_cert: str | None = None
    apt_cache_time: int = Field(3600, ge=0)
    private_address: HostAddress | None = None  # how load balancers reach this app server
    rolling_batch: int | str = 1  # app servers switched at a time behind load balancers
    https: bool = False
    acme_email: str | None = None
    acme_server: AcmeUrl | None = None  # None: certbot's default CA
    acme_ca_bundle: HostPath | None = None
    hsts: bool = True
    hsts_max_age: int = Field(63072000, ge=0, le=63072000 * 5)
    hsts_include_subdomains: bool = False
    health_path: str = "/"
    health_text: str | None = None
    health_timeout: int = Field(30, ge=1, le=600)
    keep_releases: int = Field(5, ge=1, le=100)
    release: str | None = Field(None, pattern=r"^[0-9a-f]{16}$")
    fast_facts: bool = True  # the speed layer (deploys/speed); false: stock pyinfra
    workers: dict[ProcessName, Worker] = {}  # or "Procfile": its entries but web and release
    timers: dict[ProcessName, Timer] = {}
    worker_start_seconds: int = Field(5, ge=0, le=300)  # a new worker must stay up this long
    worker_hosts: GroupName | None = None  # inventory group running workers (default: all)
    timer_hosts: GroupName | None = None  # inventory group whose first host runs the timers
    process: ProcessName | None = None  # logs.py: one worker's or timer's journal
    postgresql: bool = False  # a database of its own (DATABASE_URL), see docs/databases.md
    redis: bool = False  # a Redis of its own (REDIS_URL)
    redis_maxmemory: str = "128mb"
    redis_maxmemory_policy: MaxmemoryPolicy = "noeviction"
    backups: bool = False  # see docs/backups.md
    backup_on_calendar: Calendar = "daily"  # systemd's calendar syntax
    backup_keep: int = Field(14, ge=1, le=1000)
    backup_copy_to: GroupName | None = None  # inventory group of backup servers it goes to
    backup_on_failure: str | None = None  # a command run (its own sandbox) when a backup fails
    backup: str | None = Field(None, pattern=r"^(latest|\d{8}T\d{6}Z)$")  # restore.py's
    # restore.py's, on a fleet's database server (default: ``backup``)
    database_backup: str | None = Field(None, pattern=r"^(latest|\d{8}T\d{6}Z)$")
    from_host: str | None = Field(None, min_length=1, max_length=253)  # restore.py's: whose copy
    # not a setting: the address of the inventory's database server, where an app server's
    # database and Redis live (stack/fleet.as_served); None: on this host
    database_server: str | None = None
    # not a setting: every package the venv gets, pinned with hashes, resolved for the hosts'
    # Python (stack/virtualenv.with_resolved); None: not resolved in this run
    resolved: str | None = None

    # each field's rules (validation.py), before or after pydantic reads its type
    _names_as_served = applied(names_as_served, "server_name", mode="before")
    _one_or_many = applied(one_or_many, *LIST_FIELDS, mode="before")
    _not_host_wide = applied(not_host_wide, "app_name", "app_user")
    _count_or_percentage = applied(count_or_percentage, "rolling_batch", mode="before")
    _module_form = applied(module_form, "app_module")
    _shared_paths = applied(shared_paths_inside, "shared_paths")
    _static_form = applied(static_form, "static")
    _commands = applied(one_line_commands, "release_command")
    _command = applied(one_line_command, "backup_on_failure")
    _patterns = applied(gitignore_patterns, "exclude")
    _env_values_set = applied(env_values_set, "env", mode="before")
    _env_names = applied(env_names, "env")
    _no_spaces = applied(no_spaces, "pip_index_url", "pip_extra_index_url", "pip_cert")
    _memory_size = applied(memory_size, "redis_maxmemory", mode="before")
    _url_path = applied(url_path, "health_path")

    @field_validator("timers", mode="before")
    @classmethod
    def _timer_tables(cls, value):
        """Each timer a table with its command and calendar, said with an example."""
        example = "e.g. {'digest': {'command': 'flask digest', 'on_calendar': 'daily'}}"
        if not isinstance(value, dict):
            raise ValueError(f"a dict of timers, {example}")
        for name, timer in value.items():
            if not isinstance(timer, dict) or not {"command", "on_calendar"} <= set(timer):
                raise ValueError(
                    f"{name}: a timer is a table with command and on_calendar (and timeout),"
                    f" {example}"
                )
        return value

    @field_validator("workers", mode="before")
    @classmethod
    def _worker_tables(cls, value, info: ValidationInfo):
        """``"Procfile"`` stands for the app's Procfile's workers, a worker given as its
        command alone for ``{"command": ...}``."""
        if value == PROCFILE:
            return procfile_workers((project_root() / info.data.get("app_src", "")).resolve())
        if not isinstance(value, dict):
            raise ValueError(
                "a dict of workers, e.g. {'tasks': 'rq worker tasks'}, or 'Procfile' (its"
                " entries but web and release)"
            )
        return {k: as_table(v) for k, v in value.items()}

    @model_validator(mode="after")
    def _app_deployable(self) -> Settings:
        """The app folder holds what the settings name (checked locally, before any host)."""
        src = self.app_path
        if not src.is_dir():
            raise ValueError(f"app_src: {src} is not a folder: point it at your app's folder")
        try:
            shipped = self.app_files.files()
        except ValueError as err:
            raise ValueError(f"app_src: {err}") from None
        problems = [
            *module_problems(src, self.app_module),
            *requirements_problems(src, self.requirements, self.dependencies_lock),
            *static_problems(self, shipped),
            *https_problems(self),
            *self._process_problems(),
        ]
        if any(w.procfile for w in self.workers.values()) and src / "Procfile" not in shipped:
            problems.append(
                "workers: the Procfile is not shipped (.gitignore or exclude keeps it back):"
                " each release's workers read their commands from its own Procfile"
            )
        if problems:
            raise ValueError("\n  ".join(problems))
        return self

    def _process_problems(self) -> list[str]:
        """The Procfile's workers readable, each timer's calendar one systemd accepts."""
        problems = []
        if self.backup_on_failure and not self.backups:
            problems.append(
                f"backup_on_failure: {self.app_name} takes no backups: set backups = true as"
                " well, or leave backup_on_failure unset"
            )
        if self.from_host and not self.backup_copy_to:
            problems.append(
                f"from_host: restore.py takes the backup of {self.app_name} from a backup server's"
                " copy: set backup_copy_to to the group of backup servers that keep them"
            )
        if self.backup_copy_to and not self.backups:
            problems.append(
                f"backup_copy_to: {self.app_name} takes no backups to copy: set backups = true"
                " as well, or leave backup_copy_to unset"
            )
        reason = calendar_problem(self.backup_on_calendar) if self.backups else None
        if reason:
            problems.append(
                f"backup_on_calendar: {reason} (systemd's calendar syntax, e.g. daily, hourly,"
                " '*-*-* 03:00')"
            )
        for name, timer in self.timers.items():
            if name in self.workers:
                problems.append(f"timers: {name!r} is also a worker's name: give it another")
            reason = calendar_problem(timer.on_calendar)
            if reason:
                problems.append(
                    f"timers.{name}.on_calendar: {reason} (systemd's calendar syntax, e.g."
                    " daily, hourly, 'Mon *-*-* 09:00', '*-*-* 03:00')"
                )
        return problems

    @property
    def local_postgresql(self) -> bool:
        """Whether the app's PostgreSQL database is on this host (not on the fleet's
        database server)."""
        return self.postgresql and not self.database_server

    @property
    def local_redis(self) -> bool:
        """Whether the app's Redis runs on this host."""
        return self.redis and not self.database_server

    @property
    def app_path(self) -> Path:
        """The local app folder, relative paths taken from the repository root."""
        return (project_root() / self.app_src).resolve()

    @property
    def expected_text(self) -> str:
        """Text the health path must answer with: health_text, or for the sample app its
        greeting; empty means any 200 will do."""
        if self.health_text is not None:
            return self.health_text
        return SAMPLE_APP_GREETING if self.app_path == project_root() / "app" else ""

    @property
    def app_files(self) -> AppFiles:
        """What of the app folder ships (see deploys/config/shipping.py)."""
        return AppFiles(self.app_path, tuple(self.exclude), tuple(self.shared_paths))

    @property
    def requirements_text(self) -> str:
        """The app's requirements (see deploys/config/dependencies.py)."""
        return requirements_text(self.app_path, self.requirements)

    @property
    def shared_folders(self) -> list[str]:
        """The shared paths that are folders: all but those that are files in the app."""
        return [p for p in self.shared_paths if not (self.app_path / p).is_file()]

    @property
    def source_root(self) -> str:
        """Where the app's top-level module lives inside the app folder: "" or "src"."""
        return module_file(self.app_path, self.app_module)[0]

    @property
    def default_server(self) -> bool:
        """Whether the app answers any host name (``server_name = "_"``)."""
        return self.server_name == ["_"]

    @property
    def host_header(self) -> str:
        """The Host header that reaches this app: its first name, or ``localhost`` when that
        is ``_`` (the health checks, the verifier and the load balancers' probes)."""
        return "localhost" if self.server_name[0] == "_" else self.server_name[0]

    @property
    def user(self) -> str:
        """The system user the app runs as."""
        return self.app_user or self.app_name


class SettingsError(ValueError):
    """Settings that cannot be deployed; the message names each bad key and the fix (during
    a pyinfra run: ops.context.SettingsRefused, which pyinfra shows as its own errors)."""


def our_keys(data: dict) -> dict:
    """The keys of host data that are settings: all but pyinfra's own."""
    return {k: v for k, v in data.items() if not k.startswith(PYINFRA_KEY_PREFIXES)}


def load_settings(data: dict, host_name: str = "", secrets: bool = True) -> Settings:
    """Validate a host's data into Settings, or raise SettingsError naming every bad key.
    ``secrets=False`` (entry points that write no secrets) leaves out ``env`` values that
    are not set instead of refusing them."""
    settings, problems = settings_problems(data, secrets)
    if problems:
        where = f" for host {host_name}" if host_name else ""
        raise SettingsError(f"invalid settings{where}:\n  " + "\n  ".join(problems))
    assert settings is not None  # settings_problems gives None only with problems
    return settings


def settings_problems(data: dict, secrets: bool = True) -> tuple[Settings | None, list[str]]:
    """Settings from ``data`` (pyinfra's keys left out), or None and every problem, each
    naming its key."""
    fields = Settings.model_fields
    ours = our_keys(data)
    if not secrets and isinstance(ours.get("env"), dict):
        ours["env"] = {k: v for k, v in ours["env"].items() if not is_unset(v)}
    problems = []
    for key in sorted(set(ours) & set(DERIVED)):
        problems.append(f"{key}: {DERIVED[key]}")
    for key in sorted(set(ours) - set(fields)):
        close = difflib.get_close_matches(key, list(fields), n=1)
        hint = f"did you mean {close[0]!r}?" if close else "see docs/settings.md"
        problems.append(f"{key}: unknown setting; {hint}")
    known = {k: v for k, v in ours.items() if k in fields and k not in DERIVED}
    try:
        settings = Settings(**known)
    except ValidationError as exc:
        for err in exc.errors():
            message = err["msg"].removeprefix("Value error, ")
            if not err["loc"]:  # the app checks: each line names its setting already
                problems.append(message)
                continue
            key = ".".join(str(p) for p in err["loc"])
            shown = key in known and key not in SECRET_KEYS
            given = f" (given {err['input']!r})" if shown else ""
            problems.append(f"{key}: {message}{given}")
        settings = None
    return (None if problems else settings), problems
