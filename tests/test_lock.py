"""The deploy lock's shell, run for real with flock: the second holder waits, names the first,
gives up after its wait, and gets the lock as soon as the first one's input closes."""

import os
import signal
import subprocess
import threading

from deploys.release.lock import lock_script
from tests.test_batchshell import shell_on


def holder(tmp_path, owner: str, wait: int = 5, batches: bool = False) -> subprocess.Popen:
    folder = str(tmp_path / "locks")
    script = lock_script("app", owner, wait=wait, folder=folder, batches=batches)
    return subprocess.Popen(
        ["sh", "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def free(lock) -> bool:
    """Whether nobody holds the lock file ``lock`` (flock, as the lock script takes it)."""
    return subprocess.run(["flock", "-n", str(lock), "true"], timeout=10).returncode == 0


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
    assert (tmp_path / "locks/app.lock.owner").read_text() == "deploy.py by bob\n"
    second.stdin.close()
    second.wait(timeout=5)


def test_a_folder_others_can_write_is_refused(tmp_path):
    (tmp_path / "locks").mkdir(mode=0o777)
    (tmp_path / "locks").chmod(0o777)
    refused = holder(tmp_path, "deploy.py by alice")
    _, err = refused.communicate(timeout=10)
    assert refused.returncode == 1 and not (tmp_path / "locks/app.lock").exists()
    assert "locks is writable by others" in err


def test_the_holder_starts_the_fact_shell_which_never_gets_the_lock(tmp_path):
    """The lock's process starts the shell of the fact cache's batches and passes it what
    follows on its input (one channel and one sudo fewer). That shell has no hold on the
    lock: when the run ends (its input closes) the lock goes, even while a fact hangs."""
    first = holder(tmp_path, "deploy.py by alice", batches=True)
    assert first.stdout.readline() == "locked\n"
    shell = shell_on(first)
    lock = tmp_path / "locks/app.lock"
    assert shell.run(["echo fact", f"flock -n {lock} true; echo $?"]) == [
        (0, ["fact"]),
        (0, ["1"]),  # held, by the holder
    ]
    assert shell.run(["ls -l /proc/$$/fd/ | grep -c app.lock"]) == [(1, ["0"])]
    assert not (tmp_path / "locks/app.batches").exists()  # the pipe's name is gone

    hung = threading.Thread(target=shell.run, args=(["sleep 3"],))
    hung.start()
    second = holder(tmp_path, "deploy.py by bob")
    assert second.stdout.readline() == "waiting for deploy.py by alice\n"
    first.stdin.close()  # the run ends while its fact hangs
    assert second.stdout.readline() == "locked\n"
    hung.join(timeout=10)
    second.stdin.close()
    second.wait(timeout=5)


def test_the_lock_stays_held_when_the_fact_shell_dies(tmp_path):
    first = holder(tmp_path, "deploy.py by alice", batches=True)
    assert first.stdout.readline() == "locked\n"
    shell = shell_on(first)
    [(_, [pid])] = shell.run(["echo $$"])
    os.kill(int(pid), signal.SIGKILL)
    first.stdin.write("echo into a pipe nobody reads\n")  # the holder's copy fails; it holds on
    first.stdin.flush()
    lock = tmp_path / "locks/app.lock"
    assert not free(lock)
    first.stdin.close()
    first.wait(timeout=5)
    assert free(lock)


def test_a_run_killed_while_it_waits_leaves_no_lock_behind(tmp_path):
    """A run waiting for the lock is killed (its channel closes: nothing reads its output):
    when the lock comes its way, it must end there, not hold it with no one to release it."""
    first = holder(tmp_path, "deploy.py by alice")
    assert first.stdout.readline() == "locked\n"
    killed = holder(tmp_path, "deploy.py by bob", batches=True)
    assert killed.stdout.readline() == "waiting for deploy.py by alice\n"
    killed.stdin.close()
    killed.stdout.close()
    first.stdin.close()
    first.wait(timeout=5)
    killed.wait(timeout=10)
    assert free(tmp_path / "locks/app.lock")


def test_only_the_lock_s_user_can_open_its_files(tmp_path):
    """Another user who could open the lock file could hold it (a shared flock) and stop
    every deploy; the owner file names who deploys from where."""
    first = holder(tmp_path, "deploy.py by alice")
    assert first.stdout.readline() == "locked\n"
    for name in ("app.lock", "app.lock.owner"):
        assert (tmp_path / "locks" / name).stat().st_mode & 0o777 == 0o600
    first.stdin.close()
    first.wait(timeout=5)
