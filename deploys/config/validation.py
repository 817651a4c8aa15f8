"""The rules each setting's value must follow, checked before any host is touched: each
refusal names the value and what to write instead. Settings (settings.py) declares the
fields and applies these."""

from __future__ import annotations

import ast
import ipaddress
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from pathspec import GitIgnoreSpec
from pydantic import AfterValidator, SecretStr

from deploys.config.dependencies import requirements_text
from deploys.config.lock import hash_pinned
from deploys.config.processes import one_line
from deploys.config.secrets import is_unset
from deploys.hostside.rules import TRANSIENT_KINDS

if TYPE_CHECKING:
    from deploys.config.settings import Settings

# host-wide names: nginx sites, the folder of the sockets and the deploy lock (/run/...)
RESERVED_APP_NAMES = ("default", "flask-deploy-catch-all", "flask-deploy")
# the users and roles of the host's databases: an app's user or role must never be one of them
DATASTORE_USERS = ("postgres", "redis")
# the release checks' transient units are <app_user>-<kind>, the handover instance
# <app_name>-handover, its Redis <app_name>-redis, its backups <app_name>-backup (and what
# runs when one fails, <app_name>-backup-failed): no app may be named so
TRANSIENT_SUFFIXES = (
    *(f"-{kind}" for kind in TRANSIENT_KINDS),
    "-handover",
    "-redis",
    "-backup",
    "-backup-failed",
)
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
    """A validator refusing a text ``pattern`` does not match, saying what is ``allowed``."""

    def check(value: str) -> str:
        """The value, when ``pattern`` matches all of it."""
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
GroupName = Annotated[
    str,
    _matches(re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"), "an inventory group's name"),
]
PipRequirement = Annotated[str, _matches(PIP_REQ_RE, "a pip requirement such as requests==2.32.3")]
# Debian's package names (policy 5.6.7), never ending in "-" (apt would remove the package)
DebianPackage = Annotated[
    str,
    _matches(
        re.compile(r"^[a-z0-9][a-z0-9+.-]*[a-z0-9+.]$"),
        "a Debian package's name such as libpq5 or gettext (no version, no trailing -)",
    ),
]


def names_as_served(value):
    """DNS names as nginx and certbot compare them: lowercase, no trailing dot, once."""
    names = [value] if isinstance(value, str) else list(value)
    cleaned = [n.lower().rstrip(".") if isinstance(n, str) and n != "_" else n for n in names]
    return list(dict.fromkeys(cleaned))


def one_or_many(value):
    """A single value given where a list is expected, as a list of one."""
    return [value] if isinstance(value, str) else value


def not_host_wide(value: str | None) -> str | None:
    """Refuses the names of the host-wide files and of the release checks' units."""
    if value in RESERVED_APP_NAMES:
        raise ValueError(f"{value!r} is a host-wide name of this deploy: pick another name")
    if value and (value in DATASTORE_USERS or value.startswith("pg_")):
        raise ValueError(
            f"{value!r} is a name of the host's PostgreSQL or Redis (its superuser, its roles):"
            " pick another name"
        )
    if value and ("-worker-" in f"{value}-" or "-timer-" in f"{value}-"):
        raise ValueError(
            f"{value!r} holds or ends with -worker or -timer, which name another app's"
            " workers' and timers' units: pick another name"
        )
    if value and value.endswith(TRANSIENT_SUFFIXES):
        raise ValueError(
            f"{value!r} ends like the release checks', Redis' or backups' units of another app"
            f" ({', '.join(TRANSIENT_SUFFIXES)}): pick another name"
        )
    return value


def count_or_percentage(value):
    """rolling_batch: a number of app servers, or a percentage of them such as 25%."""
    text = str(value).strip()
    if re.fullmatch(r"[1-9][0-9]{0,3}", text):
        return int(text)
    if re.fullmatch(r"([1-9][0-9]?|100)%", text):
        return text
    raise ValueError("a number of app servers (1 or more) or a percentage such as 25%")


def module_form(value: str) -> str:
    """app_module: module:app or module:factory()."""
    if not MODULE_RE.fullmatch(value):
        raise ValueError(
            f"{value!r} is not of the form module:app or module:factory(),"
            " e.g. wsgi:app or myapp:create_app()"
        )
    return value


def shared_paths_inside(value: list[str]) -> list[str]:
    """shared_paths: relative paths inside the app, none twice or inside another."""
    paths = [
        app_path_inside(path.rstrip("/"), "a path inside the app such as instance")
        for path in value
    ]
    for path in paths:
        inside = [other for other in paths if other != path and other.startswith(f"{path}/")]
        if inside or paths.count(path) > 1:
            raise ValueError(f"{path!r} is listed twice or holds another shared path")
    return paths


def static_form(value: dict[str, str]) -> dict[str, str]:
    """static: URL prefix -> a folder inside the app, trailing slashes dropped."""
    checked = {}
    for prefix, folder in value.items():
        if not URL_PREFIX_RE.fullmatch(prefix.rstrip("/")):
            raise ValueError(
                f"URL prefix {prefix!r} is not allowed: use a path such as /static"
                " (letters, digits, . _ ~ -; not / alone)"
            )
        checked[prefix.rstrip("/")] = app_path_inside(
            folder.rstrip("/"), "a folder inside the app such as myapp/static"
        )
    return checked


def one_line_commands(value: list[str]) -> list[str]:
    """release_command: each a non-empty single line."""
    return [one_line(command) for command in value]


def one_line_command(value: str | None) -> str | None:
    """backup_on_failure: a non-empty single line, if set."""
    return None if value is None else one_line(value)


def gitignore_patterns(value: list[str]) -> list[str]:
    """exclude: each a valid .gitignore pattern."""
    for pattern in value:
        try:
            GitIgnoreSpec.from_lines([pattern])
        except ValueError as err:
            raise ValueError(f"{pattern!r} is not a .gitignore pattern: {err}") from None
    return value


def env_values_set(value):
    """env: every value set (a value read from an unset environment variable is refused)."""
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


def env_names(value: dict[str, SecretStr]) -> dict[str, SecretStr]:
    """env: names the app may get, values without newline or NUL."""
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


def no_spaces(value):
    """The pip index settings and pip_cert: non-empty, without spaces."""
    for item in value if isinstance(value, list) else [value]:
        text = item.get_secret_value() if isinstance(item, SecretStr) else item
        if text is not None and (not text or any(c.isspace() for c in text)):
            raise ValueError("must be non-empty and have no spaces")
    return value


def https_problems(settings: Settings) -> list[str]:
    """HTTPS needs names a public CA can check over HTTP-01, and an address for the CA."""
    if not settings.https:
        return []
    problems = []
    for name in settings.server_name:
        if name == "_" or name.startswith("*."):
            problems.append(
                f"server_name: {name!r} cannot get a certificate with https = true (the"
                " HTTP-01 challenge needs each exact name): list the site's names"
            )
        elif is_ip_address(name):
            problems.append(
                f"server_name: {name!r} is an IP address; ACME CAs issue for DNS names:"
                " point a name at the host and list it"
            )
    if len(settings.server_name) > MAX_CERT_NAMES:
        problems.append(
            f"server_name: {len(settings.server_name)} names; a certificate holds at most"
            f" {MAX_CERT_NAMES}: split the site"
        )
    if not settings.acme_email:
        problems.append(
            "acme_email: https = true needs an address for the CA's expiry and account"
            " notices, e.g. acme_email = 'ops@example.com'"
        )
    elif not EMAIL_RE.fullmatch(settings.acme_email):
        problems.append(f"acme_email: {settings.acme_email!r} is not an email address")
    return problems


def static_problems(settings: Settings, shipped: list[Path]) -> list[str]:
    """Why a static folder cannot be served by nginx: missing, not shipped, holding code or data."""
    problems = []
    for prefix, folder in settings.static.items():
        where = f"static: {prefix} -> {folder}"
        shared = [p for p in settings.shared_paths if folder == p or folder.startswith(f"{p}/")]
        holds = [p for p in settings.shared_paths if p.startswith(f"{folder}/")]
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
        elif not (settings.app_path / folder).is_dir():
            hint = (
                " (did you mean src/...?)" if (settings.app_path / "src" / folder).is_dir() else ""
            )
            problems.append(f"{where}: no such folder in {settings.app_path}{hint}")
        else:
            served = [p for p in shipped if p.is_relative_to(settings.app_path / folder)]
            code = [p for p in served if p.suffix in CODE_SUFFIXES]
            if not served:
                problems.append(
                    f"{where}: no file of it is shipped (ignored by .gitignore or exclude?)"
                )
            elif code:
                problems.append(
                    f"{where} holds the app's code ({code[0].relative_to(settings.app_path)}):"
                    " nginx would serve it to anyone; point static at the public assets"
                )
    return problems


def app_path_inside(value: str, example: str) -> str:
    """A relative path inside the app folder, refused when it could leave it."""
    if not APP_PATH_RE.fullmatch(value) or ".." in value.split("/"):
        raise ValueError(f"{value!r} is not allowed: use {example} (relative, no .., no leading /)")
    return value


def is_ip_address(name: str) -> bool:
    """Whether ``name`` is an IP address rather than a DNS name."""
    try:
        ipaddress.ip_address(name.rstrip("."))
    except ValueError:
        return False
    return True


def module_file(src: Path, app_module: str) -> tuple[str, Path | None]:
    """(source root, file) of the module app_module names, looked for in the app folder and
    its src/ folder; file None when missing."""
    dotted = app_module.split(":")[0].replace(".", "/")
    for root in SOURCE_LAYOUTS:
        for candidate in (f"{dotted}.py", f"{dotted}/__init__.py"):
            if (src / root / candidate).is_file():
                return root, src / root / candidate
    return "", None


def module_problems(src: Path, app_module: str) -> list[str]:
    """Why uWSGI could not load ``app_module`` from the app folder (empty when it can)."""
    module, name = app_module.split(":")
    is_factory = name.endswith("()")
    name = name.removesuffix("()")
    _, found = module_file(src, app_module)
    if found is None:
        wanted = module.replace(".", "/") + ".py"
        return [f"app_module: {app_module!r} needs {wanted} (or its package) in {src}"]
    names = top_level_names(found)
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


def requirements_problems(src: Path, requirements: str | None, locked: bool = False) -> list[str]:
    """Why the app's requirements cannot be read (empty when they can); with ``locked``
    (``dependencies_lock``), why they are no lock: every package pinned with its hashes."""
    try:
        text = requirements_text(src, requirements)
    except ValueError as err:
        return [f"requirements: {err}"]
    if locked and not hash_pinned(text):
        return [
            f"dependencies_lock: {src} has no lock: add a uv.lock (`uv lock`), or a"
            " requirements.txt with every package pinned and hashed (`uv pip compile"
            " --generate-hashes -o requirements.txt pyproject.toml`)"
        ]
    return []


def top_level_names(path: Path) -> dict[str, ast.AST | None]:
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


MEMORY_RE = re.compile(r"^([1-9][0-9]{0,5})\s*(k|m|g)b?$", re.IGNORECASE)


def memory_size(value):
    """A memory size as Redis takes it (``64mb``, ``512kb``, ``1gb``), from any case and
    with or without the ``b`` (``256MB``, ``1G``)."""
    match = MEMORY_RE.match(str(value).strip())
    if not match:
        raise ValueError("a size such as 64mb, 512kb or 1gb (up to 6 digits, then kb, mb or gb)")
    return f"{match.group(1)}{match.group(2).lower()}b"


def url_path(value: str) -> str:
    """A URL path: it starts with /, and holds no space."""
    if not value.startswith("/") or any(c.isspace() for c in value):
        raise ValueError(
            f"a URL path starting with / and without spaces, e.g. /{value.strip('/ ') or 'health'}"
        )
    return value
