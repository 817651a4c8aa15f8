"""The deploy's settings: defaults in one place, validated once per host before anything runs.

Settings live in pyinfra host/group data (inventory, ``inventories/group_data/*.py`` or
``--data key=value``). Keys that belong to pyinfra itself (connector keys such as ``ssh_*``
and ``_*`` global arguments) are left alone; any other key must be a field below, so a typo
is an error naming the key, not a silently ignored setting.
"""

from __future__ import annotations

import ast
import difflib
import re
from pathlib import Path
from typing import Annotated

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

SECRET_KEYS = {"env", "pip_index_url", "pip_extra_index_url"}  # never echoed in errors
NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
HOSTNAME_RE = re.compile(r"^(_|(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9-]{1,63})*\.?)$")
MODULE_RE = re.compile(
    r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$"
)
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
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
HostName = Annotated[str, _matches(HOSTNAME_RE, "a DNS name such as example.com, or _ for any")]
UfwRule = Annotated[
    str, _matches(UFW_RULE_RE, "a port such as 8080/tcp, a range 6000:6007/udp or a ufw app name")
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
    requirements: str = "requirements.txt"
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
    health_path: str = Field("/", pattern=r"^/[^\s]*$")
    health_text: str | None = None
    health_timeout: int = Field(30, ge=1, le=600)
    keep_releases: int = Field(5, ge=1, le=100)
    release: str | None = Field(None, pattern=r"^[0-9a-f]{16}$")

    @field_validator(
        "server_name", "python_packages", "firewall_allow", "pip_extra_index_url", mode="before"
    )
    @classmethod
    def _one_or_many(cls, value):
        return [value] if isinstance(value, str) else value

    @field_validator("app_module")
    @classmethod
    def _module_form(cls, value: str) -> str:
        if not MODULE_RE.fullmatch(value):
            raise ValueError(f"{value!r} is not of the form module:callable, e.g. wsgi:app")
        return value

    @field_validator("env", mode="before")
    @classmethod
    def _env_values_set(cls, value):
        unset = sorted(name for name, val in dict(value).items() if val is None)
        if unset:
            raise ValueError(
                f"no value for {', '.join(map(str, unset))}: set it where your settings read it"
                " from (e.g. export it before running pyinfra)"
            )
        return value

    @field_validator("env")
    @classmethod
    def _env_names(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for name, val in value.items():
            if not ENV_NAME_RE.fullmatch(name):
                raise ValueError(f"env name {name!r} is not allowed: use letters, digits and _")
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
    def _app_importable(self) -> Settings:
        src = self.app_path
        if not src.is_dir():
            raise ValueError(f"app_src: {src} is not a folder: point it at your app's folder")
        module, callable_name = self.app_module.split(":")
        module_file = src / (module.replace(".", "/") + ".py")
        package_file = src / module.replace(".", "/") / "__init__.py"
        found = next((f for f in (module_file, package_file) if f.is_file()), None)
        if found is None:
            raise ValueError(
                f"app_module: {self.app_module!r} needs {module_file.relative_to(src)} in {src}"
            )
        if callable_name not in _top_level_names(found):
            raise ValueError(
                f"app_module: {found.name} defines or imports no {callable_name!r}"
                f" at top level: fix app_module or the app"
            )
        if not (src / self.requirements).is_file():
            raise ValueError(f"requirements: {src / self.requirements} does not exist")
        return self

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
    def user(self) -> str:
        """The system user the app runs as."""
        return self.app_user or self.app_name


def _top_level_names(path: Path) -> set[str]:
    """Names bound at the top level of a Python file (assignments, defs, imports)."""
    try:
        tree = ast.parse(path.read_text(), filename=str(path))
    except SyntaxError as exc:
        raise ValueError(f"app_module: {path} has a syntax error: {exc}") from None
    names: set[str] = set()
    for node in tree.body:
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign | ast.AugAssign):
            targets = [node.target]
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


class SettingsError(PyinfraError):
    """Settings that cannot be deployed; the message names each bad key and the fix."""


def load_settings(data: dict, host_name: str = "") -> Settings:
    """Validate a host's data into Settings, or raise SettingsError naming every bad key."""
    fields = Settings.model_fields
    ours = {k: v for k, v in data.items() if not k.startswith(PYINFRA_KEY_PREFIXES)}
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
            key = ".".join(str(p) for p in err["loc"]) or "settings"
            shown = key in known and key not in SECRET_KEYS
            given = f" (given {err['input']!r})" if shown else ""
            problems.append(f"{key}: {err['msg'].removeprefix('Value error, ')}{given}")
        settings = None
    if problems:
        where = f" for host {host_name}" if host_name else ""
        raise SettingsError(f"invalid settings{where}:\n  " + "\n  ".join(problems))
    return settings
