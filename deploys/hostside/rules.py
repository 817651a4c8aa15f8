"""Rules the host-side checks and the deploy share (deploys/ imports this module): what a
transient unit is called, what root's record says, which release to go back to."""

TRANSIENT_KINDS = (
    "import-check",
    "release-command",
    "candidate",
    "command",
    "backup-read",
    "restore",
)


def transient_unit(user: str, kind: str) -> str:
    """The transient unit in which the app's code runs for one of the TRANSIENT_KINDS of
    work (the run's watchdog stops them all by these names)."""
    assert kind in TRANSIENT_KINDS, kind
    return f"{user}-{kind}"


def release_in_record(record: str, invocation: str) -> str | None:
    """The release root's record (``INVOCATION_ID RELEASE``, written by the unit before each
    start) names, if it is the record of the run ``invocation`` ("" when the service does
    not run: None). The deploy reads records with this rule too."""
    words = record.split()
    return words[1] if invocation and len(words) == 2 and words[0] == invocation else None


def previous_release(names: list[str], live: str) -> str | None:
    """The release to go back to from ``live``: the newest healthy one in the history
    (``names``, oldest first) that is not it. The gate's switch-back and rollback.py share
    this rule."""
    return next((name for name in reversed(names) if name != live), None)
