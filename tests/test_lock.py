"""The deploy lock's shell, run for real with flock: the second holder waits, names the first,
gives up after its wait, and gets the lock as soon as the first one's input closes."""

import subprocess

from deploys.batchshell import BatchShell
from deploys.lock import AND_BATCHES, HOLD, lock_script


def holder(tmp_path, owner: str, wait: int = 5, then: str = HOLD) -> subprocess.Popen:
    script = lock_script("app", owner, wait=wait, folder=str(tmp_path / "locks"), then=then)
    return subprocess.Popen(
        ["sh", "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_second_run_waits_names_the_holder_and_gives_up(tmp_path):
    first = holder(tmp_path, "deploy.py by alice")
    assert first.stdout.readline() == "locked\n"
    second = holder(tmp_path, "rollback.py by bob", wait=1)
    out, _ = second.communicate(timeout=10)
    assert out == "waiting for deploy.py by alice\ntimeout: held by deploy.py by alice\n"
    assert second.returncode == 1
    first.stdin.close()
    first.wait(timeout=5)


def test_the_lock_passes_on_when_the_holders_input_closes(tmp_path):
    first = holder(tmp_path, "deploy.py by alice")
    assert first.stdout.readline() == "locked\n"
    second = holder(tmp_path, "deploy.py by bob")
    assert second.stdout.readline() == "waiting for deploy.py by alice\n"
    first.stdin.close()  # the first run's SSH channel closes: it ended, failed or was killed
    assert second.stdout.readline() == "locked\n"
    assert (tmp_path / "locks/app.deploy-lock.owner").read_text() == "deploy.py by bob\n"
    second.stdin.close()
    second.wait(timeout=5)


def test_a_folder_others_can_write_is_refused(tmp_path):
    (tmp_path / "locks").mkdir(mode=0o777)
    (tmp_path / "locks").chmod(0o777)
    refused = holder(tmp_path, "deploy.py by alice")
    _, err = refused.communicate(timeout=10)
    assert refused.returncode == 1 and not (tmp_path / "locks/app.deploy-lock").exists()
    assert "locks is writable by others" in err


def test_the_holder_goes_on_as_the_fact_shell_and_no_fact_keeps_the_lock(tmp_path):
    """The lock's process becomes the shell of the fact cache's batches (one channel and one
    sudo fewer): it answers batches while the lock holds, no fact command gets the lock's
    descriptor (a process one leaves behind would keep the lock after the run), and the lock
    goes when the input closes."""
    first = holder(tmp_path, "deploy.py by alice", then=AND_BATCHES)
    assert first.stdout.readline() == "locked\n"

    def send(text: str) -> None:
        first.stdin.write(text)
        first.stdin.flush()

    shell = BatchShell(send, first.stdout, first.stdin.close)
    lock = tmp_path / "locks/app.deploy-lock"
    assert shell.run(["echo fact", f"flock -n {lock} true; echo $?", "sleep 10 >/dev/null &"]) == [
        (0, ["fact"]),
        (0, ["1"]),  # held: by the shell, not given to the fact
        (0, []),
    ]
    assert shell.run(["ls -l /proc/self/fd/ | grep -c deploy-lock"]) == [(1, ["0"])]
    second = holder(tmp_path, "deploy.py by bob")
    assert second.stdout.readline() == "waiting for deploy.py by alice\n"
    shell.close()  # the run ends; the sleep a fact left behind holds no lock
    assert second.stdout.readline() == "locked\n"
    second.stdin.close()
    second.wait(timeout=5)
    first.wait(timeout=5)
