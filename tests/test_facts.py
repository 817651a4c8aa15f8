"""The verifier's custom facts parse what real Debian 12 hosts print (tests/captured/)."""

from pathlib import Path

import pytest

from deploys.ops.facts import (
    HostPython,
    HttpResponse,
    NginxConfigTest,
    SandboxExposure,
    ServiceWritable,
    TlsCertificate,
    UnitStatus,
    UserCanReadWrite,
)
from deploys.release.live import LiveRelease, release_history
from deploys.stack.appuser import PathsPresent
from deploys.stack.https import PEM_REMOVED, CertbotLogTail, Certificate, without_pem
from deploys.stack.retire import HostedApps

CAPTURED = Path(__file__).parent / "captured"


def lines(name: str) -> list[str]:
    return (CAPTURED / name).read_text().splitlines()


def unit_status(unit: str, captured: str, along: tuple[str, ...] = ()) -> dict:
    """UnitStatus of ``unit`` (asked with ``along``) from a captured systemctl output."""
    fact = UnitStatus()
    fact.command(unit, along=along)
    return fact.process(lines(captured))


def test_unit_status_of_a_running_unit():
    assert unit_status("myproject.service", "unit-active.txt") == {
        "LoadState": "loaded",
        "ActiveState": "active",
        "UnitFileState": "enabled",
        "MainPID": 3318,
        "ExecMainStartTimestamp": 1796453795,
        "NeedDaemonReload": False,
        "DropInPaths": ["/etc/systemd/system/myproject.service.d/sandbox.conf"],
        "InvocationID": "dda44baf533f46acb7b88c03fb437a76",
    }


def test_unit_status_of_a_missing_unit():
    status = unit_status("nosuch.service", "unit-missing.txt")
    assert (status["ActiveState"], status["UnitFileState"], status["MainPID"]) == (
        "inactive",
        "",
        0,
    )
    assert status["ExecMainStartTimestamp"] == 0
    assert status["LoadState"] == "not-found" and status["DropInPaths"] == []


def test_units_read_together_share_one_command_and_each_gets_its_own_state():
    group = ("myproject.socket", "myproject.service", "myproject-handover.service")
    facts = {unit: UnitStatus() for unit in (*group, "nosuch.service")}
    commands = {
        fact.command(unit, along=(*group, "nosuch.service")) for unit, fact in facts.items()
    }
    assert len(commands) == 1  # whichever unit asks
    states = {unit: fact.process(lines("unit-group.txt")) for unit, fact in facts.items()}
    assert states["myproject.service"]["MainPID"] == 3318
    assert states["myproject.service"]["ExecMainStartTimestamp"] == 1796453795
    assert states["myproject.socket"]["ActiveState"] == "active"
    assert states["myproject.socket"]["DropInPaths"] == []
    assert states["myproject-handover.service"]["ActiveState"] == "inactive"
    assert states["myproject-handover.service"]["UnitFileState"] == "static"
    assert states["nosuch.service"]["LoadState"] == "not-found"


def test_each_unit_finds_its_block_by_id_whatever_the_order_and_an_alias_by_its_names():
    """systemctl shows an alias under the unit's own Id (sshd.service: ssh.service's
    block); a unit's state never depends on where its block is in the output."""
    along = ("ssh.service", "nosuch.service", "myproject.service")
    alias = unit_status("sshd.service", "unit-alias.txt", along)
    assert alias["MainPID"] == unit_status("ssh.service", "unit-alias.txt", along)["MainPID"] > 0
    blocks = "\n".join(lines("unit-alias.txt")).split("\n\n")
    for unit in along:
        fact = UnitStatus()
        fact.command(unit, along=along)
        shuffled = fact.process("\n\n".join(reversed(blocks)).splitlines())
        assert shuffled == unit_status(unit, "unit-alias.txt", along)
    assert unit_status("myproject.service", "unit-alias.txt", along)["MainPID"] == 3318
    assert unit_status("nosuch.service", "unit-alias.txt", along)["LoadState"] == "not-found"


def test_unit_status_asks_for_unix_timestamps():
    assert "--timestamp=unix" in UnitStatus().command("a.service")


def test_nginx_config_test_passing_and_failing():
    assert NginxConfigTest().process(lines("nginx-t-ok.txt"))["ok"] is True
    broken = NginxConfigTest().process(lines("nginx-t-broken.txt"))
    assert broken["ok"] is False
    assert 'unknown directive "garbage"' in broken["message"]


def test_http_response_statuses_and_headers():
    ok = HttpResponse().process(lines("http-200.txt"))
    assert ok["status"] == 200 and "Hello There!" in ok["body"]
    assert ok["headers"]["strict-transport-security"] == "max-age=63072000"
    moved = HttpResponse().process(lines("http-301.txt"))
    assert (moved["status"], moved["headers"]["location"]) == (301, "https://app.test/x?y=1")
    static = HttpResponse().process(lines("http-static.txt"))
    assert static["headers"]["cache-control"] == "max-age=3600" and "font-family" in static["body"]
    assert HttpResponse().process(lines("http-404.txt"))["status"] == 404
    refused = HttpResponse().process(lines("http-refused.txt"))
    assert refused["status"] == 0 and "Connection refused" in refused["body"]


def test_tls_certificate_as_a_client_sees_it():
    assert TlsCertificate().process(lines("tls-verified.txt")) == {
        "verified": True,
        "error": "",
        "not_after": 1795721836,
        "names": ["app.test"],
    }
    untrusted = TlsCertificate().process(lines("tls-untrusted.txt"))
    assert untrusted == {"verified": False, "error": "unable to get local issuer certificate"}
    unknown = TlsCertificate().process(lines("tls-unknown-name.txt"))
    assert "TLSV1_UNRECOGNIZED_NAME" in unknown["error"]  # the catch-all refused the handshake


def test_certificate_on_disk():
    assert Certificate().process(lines("certificate.txt")) == {
        "names": ["app.test"],
        "not_after": 1795721836,
        "server": "https://127.0.0.1:14000/dir",
    }
    assert Certificate().process([]) is None


def test_user_can_read_write():
    assert UserCanReadWrite().process(["yes"]) is True
    assert UserCanReadWrite().process(["no"]) is False
    assert "runuser -u www-data" in UserCanReadWrite().command("/run/a/a.sock", "www-data")


def test_live_release_from_the_stats_server():
    assert LiveRelease().process(lines("release-live.txt")) == {
        "release": "/srv/myproject/releases/eed358cb2531b095",
        "workers": 5,
    }
    assert LiveRelease().process([]) == {"release": None, "workers": 0}


@pytest.mark.parametrize(
    "forged",
    ["/srv/a/releases/x y 5", "/srv/a/releases/x", "/srv/a/releases/x 5 extra", " 5", "x -1", ""],
)
def test_live_release_answers_the_app_shaped_are_parsed_never_raised(forged):
    """The app can forge its stats (a working directory with a space, say): any answer is
    a release and a count, or "not answering", never a traceback that stops every run."""
    value = LiveRelease().process([forged])
    assert value == {"release": "/srv/a/releases/x y", "workers": 5} or value["workers"] == 0


def test_release_history(fake):
    fake({("FileContents", "path=/srv/a/state/releases.history"): lines("releases-history.txt")})
    history = release_history("/srv/a/state/releases.history")
    assert history[-1] == "eed358cb2531b095" and all(len(r) == 16 for r in history)
    fake({("FileContents", "path=/srv/a/state/releases.history"): None})  # before the first
    assert release_history("/srv/a/state/releases.history") == []


def test_sandbox_exposure_of_a_rated_unit():
    assert SandboxExposure().process(lines("sandbox-exposure.txt")) == 1.3


def test_sandbox_exposure_of_a_missing_unit_is_none():
    assert SandboxExposure().process(lines("sandbox-exposure-missing.txt")) is None


def test_service_writable_reads_the_mounts_of_the_service_sandbox():
    mounts = lines("service-mountinfo.txt")[1:]  # captured for /var/lib/notes
    assert ServiceWritable().process(["/var/lib/notes", *mounts]) is True
    assert ServiceWritable().process(["/var/lib/notes/instance", *mounts]) is True
    assert ServiceWritable().process(["/srv/notes", *mounts]) is False  # ProtectSystem=strict
    assert ServiceWritable().process(["/var/lib/other", *mounts]) is False
    assert ServiceWritable().process(lines("service-mountinfo-stopped.txt")) is None


def test_hosted_apps_with_their_service_state():
    assert HostedApps().process(lines("hosted-apps.txt")) == {
        "hello": "active",
        "myproject": "inactive",
    }
    assert HostedApps().process([]) == {}


def test_paths_present_lists_what_exists_of_any_type():
    """Captured for /etc/ssh /srv/nope /var/lib/dpkg /run/lock: the missing one is left out."""
    assert PathsPresent().process(lines("paths-present.txt")) == [
        "/etc/ssh",
        "/var/lib/dpkg",
        "/run/lock",
    ]
    assert PathsPresent().process([]) == []


def test_certbot_log_shows_no_certificate_or_key():
    """A tail of certbot's debug log that starts inside a certificate dump, holds a chain
    received from the CA, a key on one line (bytes' repr) and ends in a cut-off key."""
    shown = CertbotLogTail().process(lines("certbot-log-tail.txt"))
    text = "\n".join(shown)
    for secret in ("GNyb3N", "Q2VydG", "MIID", "MIGH", "MHcC", "BEGIN", "END"):
        assert secret not in text, secret
    assert shown[0] == PEM_REMOVED  # the dump the tail started in
    assert shown.count(PEM_REMOVED) == 3  # it and the chain's two, each a line of its own
    assert "certbot._internal.main:Successfully received certificate." in text
    assert "Replay-Nonce: k3xsbw2rKDxfiTnjx7Ke6g" in text
    assert f"key dump: b'{PEM_REMOVED}\\n' (shop)" in text  # the line's own text stays
    assert shown[-1].endswith(f"partial key dump at exit: {PEM_REMOVED}")
    assert CertbotLogTail().process([]) == [] and without_pem(["ok"]) == ["ok"]


def test_a_certbot_log_tail_inside_one_pem_block_shows_none_of_it():
    body = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7"
    shown = without_pem(["2026-12-05 03:00:01,000:DEBUG:certbot: key", body, body[:44] + "=="])
    assert shown == ["2026-12-05 03:00:01,000:DEBUG:certbot: key", PEM_REMOVED, PEM_REMOVED]


def test_host_python_is_python3s_or_its_releases():
    debian = {"release": "debian 12", "python": (3, 11), "machine": "x86_64"}
    assert HostPython().process(lines("host-python.txt")) == debian
    assert HostPython().process(lines("host-python-bare.txt")) == debian  # no python3 yet
    unknown = HostPython().process(["release plan9 4"])
    assert unknown == {"release": "plan9 4", "python": None, "machine": ""}
