"""The one way nginx's configuration changes: the new files are staged beside the old, then
in one command the files and links are swapped in, ``nginx -t`` runs and nginx reloads; when
the test fails, exactly what was there before (files and links) is put back and nginx is not
reloaded. So the configuration on disk passes ``nginx -t`` after every run, failed or not,
and no later restart or reboot picks up a broken file. App sites, the catch-all, host-wide
snippets, retired sites and a load balancer's rotation all change through ``nginx_change``."""

from __future__ import annotations

import json
import shlex

from pyinfra import host, logger, state
from pyinfra.api import operation
from pyinfra.facts.files import File, FileContents, Link, Sha256File
from pyinfra.operations.util.files import generate_color_diff

from deploys.ops.fileops import link_target, upload_command
from deploys.ops.stamps import file_hashes, recorded_stamp

RELOAD = "systemctl reload-or-restart nginx"
STAGED = ".flask-deploy-new"  # beside the path it replaces (a link's for a moment only)
BACKUP = "/etc/nginx/.flask-deploy-backup.XXXXXX"  # root-only (mktemp -d), on the files' own
# file system (not /run, which apps' runtime folders can fill); nginx includes no such name
FAILED = "nginx was not reloaded and its configuration is back as it was"


def swap_script(writes: list[str], removals: list[str], links: dict[str, str]) -> str:
    """Shell that saves each path it touches, moves the staged ``writes`` (``path`` +
    STAGED) into place, removes ``removals``, points ``links`` (path -> target), then
    reloads nginx if ``nginx -t`` passes; otherwise (or when a path cannot be put in place,
    e.g. a folder stands there) it puts every path back as it was (a path that was absent
    is absent again) and fails with nginx's own message."""
    paths = [*writes, *removals, *links]
    q = shlex.quote
    steps = [
        *(f"mv -Tf {q(p + STAGED)} {q(p)}" for p in writes),
        *(f"rm -f {q(p)}" for p in removals),
        *(
            f"ln -sfn {q(t)} {q(p + STAGED)} && mv -Tf {q(p + STAGED)} {q(p)}"
            for p, t in links.items()
        ),
    ]
    return "\n".join(
        [
            f"b=$(mktemp -d {BACKUP}) || exit 1",
            "trap 'rm -rf \"$b\"' EXIT",
            'keep() { if [ -e "$1" ] || [ -L "$1" ]; then cp -a "$1" "$b/$2"; fi; }',
            'back() { if [ -e "$b/$2" ] || [ -L "$b/$2" ]; then rm -rf "$1";'
            ' mv -Tf "$b/$2" "$1"; elif [ ! -d "$1" ] || [ -L "$1" ]; then rm -f "$1"; fi; }',
            *(f"keep {q(p)} {i} || exit 1" for i, p in enumerate(paths)),
            "out='nginx -t did not run: a path could not be put in place'",
            f"if {{ {' && '.join(steps) or 'true'}; }} && out=$(nginx -t 2>&1); then",
            f"  {RELOAD}",
            "else",
            *(f"  back {q(p)} {i}; rm -f {q(p + STAGED)}" for i, p in enumerate(paths)),
            f'  printf "%s\\n" "$out" >&2; echo {q(FAILED)} >&2; exit 1',
            "fi",
        ]
    )


def _show_diff(path: str, text: str | None) -> None:
    """Under ``--diff``, what the change does to ``path``."""
    lines = host.get_fact(FileContents, path=path)
    current = [line + "\n" for line in lines or []]
    wanted = text.splitlines(keepends=True) if text is not None else []
    verb = "remove" if text is None else "modify" if lines is not None else "create"
    host.log(f"Will {verb} {path}", logger.info)
    for line in generate_color_diff(current, wanted):
        logger.info("  %s", line)


@operation()
def nginx_change(
    files: dict[str, str | None],
    links: dict[str, str | None] | None = None,
    stamps: dict[str, dict] | None = None,
):
    """
    Make nginx's ``files`` and ``links`` what is wanted and apply them as one change (see
    the module): written, tested with ``nginx -t``, reloaded; put back as they were if the
    test fails. Nothing runs when the disk already matches and every stamp records it as
    applied; a stamp that does not (a run interrupted before its reload) reloads again.

    + files: path -> text, or None for no file there
    + links: path -> target, or None for no link there
    + stamps: stamp path -> the record to write once the reload succeeded
    """
    links = links or {}
    texts = {p: t for p, t in files.items() if t is not None}
    writes = {
        p: texts[p]
        for p, sha in file_hashes(texts).items()
        if host.get_fact(Sha256File, path=p) != sha
    }
    removals = [
        p for p, t in files.items() if t is None and host.get_fact(File, path=p) is not None
    ]
    removals += [
        p for p, t in links.items() if t is None and host.get_fact(Link, path=p) is not None
    ]
    pointed = {p: t for p, t in links.items() if t is not None and link_target(p) != t}
    stale = {s: record for s, record in (stamps or {}).items() if recorded_stamp(s) != record}
    if not (writes or removals or pointed or stale):
        host.noop("nginx's configuration is up to date and applied")
        return
    if state.config.DIFF:
        for path in [*writes, *(p for p in removals if p in files)]:
            _show_diff(path, files[path])
    for path, text in writes.items():
        yield upload_command(text.encode(), path + STAGED)
        staged = shlex.quote(path + STAGED)
        yield f"chown root:root {staged} && chmod 644 {staged}"
    yield swap_script(list(writes), removals, pointed)
    for stamp, record in (stamps or {}).items():
        # uploaded, never echoed: command lines are public
        yield upload_command(json.dumps(record, sort_keys=True).encode(), stamp)
