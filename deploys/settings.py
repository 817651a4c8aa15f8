"""The deploy's settings: defaults in one place, validated once per host before anything runs.

Settings live in pyinfra host/group data (inventory, ``inventories/group_data/*.py`` or
``--data key=value``). Keys that belong to pyinfra itself (connector keys such as ``ssh_*``
and ``_*`` global arguments) are left alone; any other key must be a field below, so a typo
is an error naming the key, not a silently ignored setting.
"""

from __future__ import annotations

import ast
import difflib
import ipaddress
import re
from pathlib import Path
from typing import Annotated

from pathspec import GitIgnoreSpec
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pyinfra.api.exceptions import PyinfraError

from deploys.dependencies import requirements_text
from deploys.secrets import is_unset
from deploys.shipping import AppFiles

REPO = Path(__file__).resolve().parent.parent
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
# host-wide names: nginx sites, the folder of the sockets and the deploy lock (/run/...)
RESERVED_APP_NAMES = ("default", "flask-deploy-catch-all", "flask-deploy")
# files/release_gate.py's transient units are <app_user><suffix>, the handover instance
# <app_name>-handover: no app may be named so
TRANSIENT_SUFFIXES = ("-candidate", "-import-check", "-release-command", "-command", "-handover")
NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
HOSTNAME_RE = re.compile(rf"^(_|(?=.{{1,253}}$)(\*\.)?{LABEL}(\.{LABEL})*)$")
MAX_CERT_NAMES = 100  # Let's Encrypt's limit of names per certificate
MODULE_RE = re.compile(
    r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*(\(\))?$"
)
APP_PATH_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*(/[A-Za-z0-9_][A-Za-z0-9._-]*)*$")
URL_PREFIX_RE = re.compile(r"^(/[A-Za-z0-9._~-]+)+$")
CODE_SUFFIXES = frozenset({".py", ".pyc", ".pyo"})  # never served as static files
SOURCE_LAYOUTS = ("", "src")  # where an app's top-level module may live: its folder, or src/
EMAIL_RE = re.compile(r"^[^@\s\"'<>,;-][^@\s\"'<>,;]*@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# what the dynamic loader, glibc or the shell read at a program's start: the unit's one root
# command (its record, see appservice.record_command) gets the app's environment file too
ENV_RESERVED_RE = re.compile(
    r"^(LD_\w*|GCONV_PATH|GETCONF_DIR|HOSTALIASES|LOCALDOMAIN|LOCPATH|NIS_PATH|NLSPATH"
    r"|RESOLV_HOST_CONF|RES_OPTIONS|TZDIR|MALLOC_\w*|GLIBC_TUNABLES|PATH|IFS|ENV|BASH_ENV"
    r"|INVOCATION_ID|NOTIFY_SOCKET|LISTEN_\w*)$"
)
UFW_RULE_RE = re.compile(r"^(\d{1,5}(:\d{1,5})?(/(tcp|udp))?|[A-Za-z][A-Za-z0-9 ._-]{0,63})$")
PIP_REQ_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-\[\],<>=!~ ;\"'+]*$")


def _matches(pattern: re.Pattern, allowed: str):
    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise ValueError(f"{value!r} is not allowed: use {allowed}")
        return value

    return AfterValidator(check)


UnixName = Annotated[
    str,
    _matches(NAME_RE, "a lowercase letter, then up to 31 of a-z 0-9 _ - (no slash, space or ..)"),
]
HostName = Annotated[
    str,
    _matches(
        HOSTNAME_RE,
        "a DNS name such as example.com, or _ for any (several: a list; on the command line"
        """ as JSON, --data 'server_name=["a.example","b.example"]')""",
    ),
]
UfwRule = Annotated[
    str, _matches(UFW_RULE_RE, "a port such as 8080/tcp, a range 6000:6007/udp or a ufw app name")
]
AcmeUrl = Annotated[
    str,
    _matches(
        re.compile(r"^https://[A-Za-z0-9.-]+(:\d+)?(/[A-Za-z0-9._~/%-]*)?$"),
        "the https URL of an ACME directory, e.g. https://ca.example/directory",
    ),
]
HostPath = Annotated[
    str, _matches(re.compile(r"^/[A-Za-z0-9._/-]+$"), "an absolute path on the host")
]
HostAddress = Annotated[
    str,
    _matches(
        re.compile(r"^([0-9]{1,3}(\.[0-9]{1,3}){3}|[0-9a-fA-F:]+|[a-z0-9]([a-z0-9.-]*[a-z0-9])?)$"),
        "an IP address or a host name, e.g. 10.0.0.5",
    ),
]
PipRequirement = Annotated[str, _matches(PIP_REQ_RE, "a pip requirement such as requests==2.32.3")]


class Settings(BaseModel):
    """Everything the deploy can be told; see the README's settings table."""

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
    exclude: list[str] = []
    shared_paths: list[str] = []
    static: dict[str, str] = {}
    static_expires: str = Field("1h", pattern=r"^(off|max|\d+[smhdwMy]?)$")
    release_command: list[str] = []
    command: str | None = None  # run.py's one-off command
    log_lines: int = Field(50, ge=1, le=100000)  # logs.py
    python_packages: list[PipRequirement] = []
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
    health_path: str = Field("/", pattern=r"^/[^\s]*$")
    health_text: str | None = None
    health_timeout: int = Field(30, ge=1, le=600)
    keep_releases: int = Field(5, ge=1, le=100)
    release: str | None = Field(None, pattern=r"^[0-9a-f]{16}$")

    @field_validator("server_name", mode="before")
    @classmethod
    def _names_as_served(cls, value):
        """DNS names as nginx and certbot compare them: lowercase, no trailing dot, once."""
        names = [value] if isinstance(value, str) else list(value)
        cleaned = [n.lower().rstrip(".") if isinstance(n, str) and n != "_" else n for n in names]
        return list(dict.fromkeys(cleaned))

    @field_validator(
        "server_name",
        "python_packages",
        "firewall_allow",
        "pip_extra_index_url",
        "exclude",
        "shared_paths",
        "release_command",
        mode="before",
    )
    @classmethod
    def _one_or_many(cls, value):
        return [value] if isinstance(value, str) else value

    @field_validator("app_name", "app_user")
    @classmethod
    def _not_host_wide(cls, value: str | None) -> str | None:
        if value in RESERVED_APP_NAMES:
            raise ValueError(f"{value!r} is a host-wide name of this deploy: pick another name")
        if value and value.endswith(TRANSIENT_SUFFIXES):
            raise ValueError(
                f"{value!r} ends like the release checks' units of another app"
                f" ({', '.join(TRANSIENT_SUFFIXES)}): pick another name"
            )
        return value

    @field_validator("rolling_batch", mode="before")
    @classmethod
    def _count_or_percentage(cls, value):
        text = str(value).strip()
        if re.fullmatch(r"[1-9][0-9]{0,3}", text):
            return int(text)
        if re.fullmatch(r"([1-9][0-9]?|100)%", text):
            return text
        raise ValueError("a number of app servers (1 or more) or a percentage such as 25%")

    @field_validator("app_module")
    @classmethod
    def _module_form(cls, value: str) -> str:
        if not MODULE_RE.fullmatch(value):
            raise ValueError(
                f"{value!r} is not of the form module:app or module:factory(),"
                " e.g. wsgi:app or myapp:create_app()"
            )
        return value

    @field_validator("shared_paths")
    @classmethod
    def _shared_paths(cls, value: list[str]) -> list[str]:
        paths = [
            _app_path(path.rstrip("/"), "a path inside the app such as instance") for path in value
        ]
        for path in paths:
            inside = [other for other in paths if other != path and other.startswith(f"{path}/")]
            if inside or paths.count(path) > 1:
                raise ValueError(f"{path!r} is listed twice or holds another shared path")
        return paths

    @field_validator("static")
    @classmethod
    def _static_form(cls, value: dict[str, str]) -> dict[str, str]:
        checked = {}
        for prefix, folder in value.items():
            if not URL_PREFIX_RE.fullmatch(prefix.rstrip("/")):
                raise ValueError(
                    f"URL prefix {prefix!r} is not allowed: use a path such as /static"
                    " (letters, digits, . _ ~ -; not / alone)"
                )
            checked[prefix.rstrip("/")] = _app_path(
                folder.rstrip("/"), "a folder inside the app such as myapp/static"
            )
        return checked

    @field_validator("release_command")
    @classmethod
    def _commands(cls, value: list[str]) -> list[str]:
        for command in value:
            if not command.strip() or "\n" in command or "\x00" in command:
                raise ValueError(f"{command!r}: a command is one non-empty line")
        return value

    @field_validator("exclude")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                GitIgnoreSpec.from_lines([pattern])
            except ValueError as err:
                raise ValueError(f"{pattern!r} is not a .gitignore pattern: {err}") from None
        return value

    @field_validator("env", mode="before")
    @classmethod
    def _env_values_set(cls, value):
        unset = sorted((str(k), v) for k, v in dict(value).items() if is_unset(v))
        if unset:
            named = ", ".join(
                name + (f" (read from ${val.variable}, not set here)" if val else "")
                for name, val in unset
            )
            raise ValueError(
                f"no value for {named}: set it where your settings read it from (e.g. export"
                " it before running pyinfra)"
            )
        return value

    @field_validator("env")
    @classmethod
    def _env_names(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for name, val in value.items():
            if not ENV_NAME_RE.fullmatch(name):
                raise ValueError(f"env name {name!r} is not allowed: use letters, digits and _")
            if ENV_RESERVED_RE.fullmatch(name):
                raise ValueError(
                    f"env name {name!r} is reserved: it steers how programs load (or systemd's"
                    " own bookkeeping), and the service's root command would read it too;"
                    " give the app the value under another name"
                )
            if "\n" in val.get_secret_value() or "\x00" in val.get_secret_value():
                raise ValueError(f"env value of {name} has a newline or NUL byte")
        return value

    @field_validator("pip_index_url", "pip_extra_index_url", "pip_cert")
    @classmethod
    def _no_spaces(cls, value):
        for item in value if isinstance(value, list) else [value]:
            text = item.get_secret_value() if isinstance(item, SecretStr) else item
            if text is not None and (not text or any(c.isspace() for c in text)):
                raise ValueError("must be non-empty and have no spaces")
        return value

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
            *_module_problems(src, self.app_module),
            *_requirements_problems(src, self.requirements),
            *self._static_problems(shipped),
            *self._https_problems(),
        ]
        if problems:
            raise ValueError("\n  ".join(problems))
        return self

    def _https_problems(self) -> list[str]:
        """HTTPS needs names a public CA can check over HTTP-01, and an address for the CA."""
        if not self.https:
            return []
        problems = []
        for name in self.server_name:
            if name == "_" or name.startswith("*."):
                problems.append(
                    f"server_name: {name!r} cannot get a certificate with https = true (the"
                    " HTTP-01 challenge needs each exact name): list the site's names"
                )
            elif _is_ip_address(name):
                problems.append(
                    f"server_name: {name!r} is an IP address; ACME CAs issue for DNS names:"
                    " point a name at the host and list it"
                )
        if len(self.server_name) > MAX_CERT_NAMES:
            problems.append(
                f"server_name: {len(self.server_name)} names; a certificate holds at most"
                f" {MAX_CERT_NAMES}: split the site"
            )
        if not self.acme_email:
            problems.append(
                "acme_email: https = true needs an address for the CA's expiry and account"
                " notices, e.g. acme_email = 'ops@example.com'"
            )
        elif not EMAIL_RE.fullmatch(self.acme_email):
            problems.append(f"acme_email: {self.acme_email!r} is not an email address")
        return problems

    def _static_problems(self, shipped: list[Path]) -> list[str]:
        problems = []
        for prefix, folder in self.static.items():
            where = f"static: {prefix} -> {folder}"
            shared = [p for p in self.shared_paths if folder == p or folder.startswith(f"{p}/")]
            holds = [p for p in self.shared_paths if p.startswith(f"{folder}/")]
            if holds:
                problems.append(
                    f"{where} holds the shared path {holds[0]!r}, the app's data, which nginx"
                    " never serves: drop this static entry (Flask then serves the folder) or"
                    " keep the data elsewhere"
                )
            elif shared:
                problems.append(
                    f"{where} is inside the shared path {shared[0]!r}: nginx serves only shipped"
                    " code, never the app's data"
                )
            elif not (self.app_path / folder).is_dir():
                hint = (
                    " (did you mean src/...?)" if (self.app_path / "src" / folder).is_dir() else ""
                )
                problems.append(f"{where}: no such folder in {self.app_path}{hint}")
            else:
                served = [p for p in shipped if p.is_relative_to(self.app_path / folder)]
                code = [p for p in served if p.suffix in CODE_SUFFIXES]
                if not served:
                    problems.append(
                        f"{where}: no file of it is shipped (ignored by .gitignore or exclude?)"
                    )
                elif code:
                    problems.append(
                        f"{where} holds the app's code ({code[0].relative_to(self.app_path)}):"
                        " nginx would serve it to anyone; point static at the public assets"
                    )
        return problems

    @property
    def app_path(self) -> Path:
        """The local app folder, relative paths taken from the repository root."""
        return (REPO / self.app_src).resolve()

    @property
    def expected_text(self) -> str:
        """Text the health path must answer with: health_text, or for the sample app its
        greeting; empty means any 200 will do."""
        if self.health_text is not None:
            return self.health_text
        return SAMPLE_APP_GREETING if self.app_path == REPO / "app" else ""

    @property
    def app_files(self) -> AppFiles:
        """What of the app folder ships (see deploys/shipping.py)."""
        return AppFiles(self.app_path, tuple(self.exclude), tuple(self.shared_paths))

    @property
    def requirements_text(self) -> str:
        """The app's requirements (see deploys/dependencies.py)."""
        return requirements_text(self.app_path, self.requirements)

    @property
    def shared_folders(self) -> list[str]:
        """The shared paths that are folders: all but those that are files in the app."""
        return [p for p in self.shared_paths if not (self.app_path / p).is_file()]

    @property
    def source_root(self) -> str:
        """Where the app's top-level module lives inside the app folder: "" or "src"."""
        return _module_file(self.app_path, self.app_module)[0]

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


def _app_path(value: str, example: str) -> str:
    """A relative path inside the app folder, refused when it could leave it."""
    if not APP_PATH_RE.fullmatch(value) or ".." in value.split("/"):
        raise ValueError(f"{value!r} is not allowed: use {example} (relative, no .., no leading /)")
    return value


def _is_ip_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name.rstrip("."))
    except ValueError:
        return False
    return True


def _module_file(src: Path, app_module: str) -> tuple[str, Path | None]:
    """(source root, file) of the module app_module names, looked for in the app folder and
    its src/ folder; file None when missing."""
    dotted = app_module.split(":")[0].replace(".", "/")
    for root in SOURCE_LAYOUTS:
        for candidate in (f"{dotted}.py", f"{dotted}/__init__.py"):
            if (src / root / candidate).is_file():
                return root, src / root / candidate
    return "", None


def _module_problems(src: Path, app_module: str) -> list[str]:
    """Why uWSGI could not load ``app_module`` from the app folder (empty when it can)."""
    module, name = app_module.split(":")
    is_factory = name.endswith("()")
    name = name.removesuffix("()")
    _, found = _module_file(src, app_module)
    if found is None:
        wanted = module.replace(".", "/") + ".py"
        return [f"app_module: {app_module!r} needs {wanted} (or its package) in {src}"]
    names = _top_level_names(found)
    if name not in names:
        return [
            f"app_module: {found.relative_to(src)} defines or imports no {name!r} at top"
            " level: fix app_module or the app"
        ]
    node = names[name]
    if not isinstance(node, ast.FunctionDef):
        return []
    required = [a.arg for a in node.args.args[: len(node.args.args) - len(node.args.defaults)]]
    if is_factory and required:
        return [
            f"app_module: {name}() needs arguments ({', '.join(required)}) but uWSGI calls it"
            f" with none: give them defaults, or add a wsgi.py with app = {name}(...) and"
            " set app_module = 'wsgi:app'"
        ]
    takes_two = len(node.args.args) >= 2 or node.args.vararg is not None
    if not is_factory and (not takes_two or len(required) > 2):
        return [
            f"app_module: {module}:{name} is a function of ({ast.unparse(node.args)}), not a"
            f" WSGI app of (environ, start_response): for an app factory write"
            f" app_module = '{module}:{name}()'"
        ]
    return []


def _requirements_problems(src: Path, requirements: str | None) -> list[str]:
    try:
        requirements_text(src, requirements)
    except ValueError as err:
        return [f"requirements: {err}"]
    return []


def _top_level_names(path: Path) -> dict[str, ast.AST | None]:
    """Names bound at the top level of a Python file: each def or class with its node,
    assignments and imports with None."""
    try:
        tree = ast.parse(path.read_text(), filename=str(path))
    except SyntaxError as exc:
        raise ValueError(f"app_module: {path} has a syntax error: {exc}") from None
    names: dict[str, ast.AST | None] = {}
    for node in tree.body:
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign | ast.AugAssign):
            targets = [node.target]
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names[node.name] = node
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update(dict.fromkeys((a.asname or a.name).split(".")[0] for a in node.names))
        names.update(dict.fromkeys(t.id for t in targets if isinstance(t, ast.Name)))
    return names


class SettingsError(PyinfraError):
    """Settings that cannot be deployed; the message names each bad key and the fix."""


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
    return settings


def settings_problems(data: dict, secrets: bool = True) -> tuple[Settings | None, list[str]]:
    """Settings from ``data`` (pyinfra's keys left out), or None and every problem, each
    naming its key."""
    fields = Settings.model_fields
    ours = our_keys(data)
    if not secrets and isinstance(ours.get("env"), dict):
        ours["env"] = {k: v for k, v in ours["env"].items() if not is_unset(v)}
    problems = []
    for key in sorted(set(ours) - set(fields)):
        close = difflib.get_close_matches(key, list(fields), n=1)
        hint = f"did you mean {close[0]!r}?" if close else "see the settings table in README.md"
        problems.append(f"{key}: unknown setting; {hint}")
    known = {k: v for k, v in ours.items() if k in fields}
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
