"""What happens on the hosts of a fleet while a rollout runs, recorded on the hosts themselves:
a sampler on each host (bash: a fresh host has no Python yet) notes, every 30 ms and with
the time it saw it, where the app's ``current`` points, its uWSGI master (the lowest
process of the service's cgroup), the app servers its load balancer site marks down,
nginx's processes (a reload replaces its workers) and each request of a load balancer's
health check that reaches the host's nginx. The hosts
share the runner's clock (they are containers), so their records interleave."""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass

from testbed.load import Load, Wrk

SAMPLER = r"""
app=$1 out=$2 stop=$3
exec >>"$out"
tail -s 0.03 -n0 -F /var/log/nginx/access.log 2>/dev/null |
    grep --line-buffered flask-deploy-check |
    while read -r client rest; do echo "$EPOCHREALTIME check $client"; done &
declare -A seen
# this host's systemd cgroup (cgroup v2, or the systemd hierarchy of v1, where the test
# bed's containers see every container's cgroups: only its own count)
own=$(sed -n 's/^[0-9]*:\(name=systemd\)\{0,1\}:\(.*\)\/init.scope$/\2/p' /proc/1/cgroup | head -n1)
for root in "/sys/fs/cgroup/systemd$own" "/sys/fs/cgroup$own"; do
    [ -d "$root/system.slice" ] && break
done
procs() {  # the processes of the unit $1
    local file="$root/system.slice/$1/cgroup.procs"
    pids=()
    [ -e "$file" ] && mapfile -t pids <"$file"
}
note() { [ "${seen[$1]-}" = "$2" ] || { seen[$1]=$2; echo "$now $1 $2"; }; }
while :; do
    now=$EPOCHREALTIME
    current=$(readlink "/srv/$app/current" 2>/dev/null) || current=-
    note current "${current##*/}"
    master=-
    if procs "$app.service"; then
        for pid in "${pids[@]}"; do
            [ "$master" = - ] || [ "$pid" -lt "$master" ] && master=$pid
        done
    fi
    note master "$master"
    down=
    if mapfile -t lines 2>/dev/null <"/etc/nginx/sites-available/$app"; then
        for line in "${lines[@]}"; do
            [[ $line =~ server\ ([^ ]+):80\ .*\ down\; ]] && down+="${BASH_REMATCH[1]},"
        done
    fi
    down=${down%,}
    note down "${down:--}"
    workers=-
    procs nginx.service && [ ${#pids[@]} -gt 0 ] && workers="${pids[*]}"
    note workers "${workers// /,}"
    [ -e "$stop" ] && break
    sleep 0.03
done
kill 0
"""

OUT, STOP = "/root/timeline.log", "/root/timeline.stop"


@dataclass(frozen=True)
class Event:
    at: float
    host: str
    what: str  # current, master, down, workers (nginx's processes) or check
    value: str


class Timeline:
    """``with Timeline(hosts) as timeline:`` records while the block runs; then
    ``timeline.events`` (in time order) and the helpers below read the record."""

    def __init__(self, hosts, app: str = "myproject"):
        self.hosts, self.app, self.events = hosts, app, []

    def __enter__(self):
        for host in self.hosts:
            host.exec(f"rm -f {OUT} {STOP}")
            sampler = f"bash -c {shlex.quote(SAMPLER)} - {self.app} {OUT} {STOP}"
            host.exec(f"setsid {sampler} </dev/null >/dev/null 2>&1 &")
        time.sleep(0.5)  # every sampler has its first sample
        return self

    def __exit__(self, *exc):
        for host in self.hosts:
            host.exec(f"touch {STOP}")
        time.sleep(0.3)
        for host in self.hosts:
            for line in host.exec(f"cat {OUT}").stdout.splitlines():
                at, what, value = line.split(" ", 2)
                self.events.append(Event(float(at), host.name, what, value))
        self.events.sort(key=lambda event: event.at)
        return False

    def changes(self, host, what: str) -> list[Event]:
        """``host``'s changes of ``what`` after its first sample."""
        mine = [e for e in self.events if e.host == host.name and e.what == what]
        return mine[1:] if what != "check" else mine

    def first_change(self, host, what: str) -> float | None:
        changes = self.changes(host, what)
        return changes[0].at if changes else None

    def show(self, start: float | None = None) -> str:
        """The record, one event a line, in seconds from ``start`` (the first event)."""
        start = start if start is not None else (self.events[0].at if self.events else 0)
        return "\n".join(
            f"{e.at - start:8.3f} {e.host:<28} {e.what:<8} {e.value}" for e in self.events
        )

    def assert_rolled(self, balancer, servers) -> None:
        """Each of ``servers``, in order, switched (``current``, then its uWSGI master) and
        was checked from ``balancer`` before the next one switched, once; the load
        balancer's nginx was never reloaded, nor any server marked down."""
        previous_check = 0.0
        for server in servers:
            switched = self.first_change(server, "current")
            assert switched is not None and switched > previous_check, server.name
            master = self.first_change(server, "master")
            assert master is not None and switched <= master, server.name
            checks = [e.at for e in self.changes(server, "check") if e.at > master]
            assert checks, f"{server.name} not checked from the load balancer after its switch"
            previous_check = checks[0]
            assert len(self.changes(server, "current")) == 1, server.name
        assert self.changes(balancer, "workers") == [], "the load balancer's nginx reloaded"
        assert self.changes(balancer, "down") == []


def rolled_under_load(hosts, title: str, action, reloads: bool = False):
    """``action()`` while the load balancer (``hosts[0]``) serves paced clients on new and
    kept-alive connections (Load) and wrk's keep-alive clients at full speed, and every
    host records its timeline; prints it all under ``title``, asserts no request failed and
    no kept-alive connection was reset (unless the load balancer ``reloads``: its old
    workers then close idle keep-alive connections, which browsers retry, as Load does),
    and returns the action's result and the timeline."""
    balancer = hosts[0]
    with Load(balancer.http_port) as load, Wrk(balancer.http_port) as wrk, Timeline(hosts) as tl:
        load.wait_for(50)
        result = action()
        load.wait_for(len(load.samples) + 100)
    print(f"\n[{title}]\n{tl.show()}\n{load.summary()}\n{wrk.summary()}")
    assert load.failed == [], load.summary()
    assert reloads or load.resets == wrk.errors == 0, (load.summary(), wrk.output)
    return result, tl
