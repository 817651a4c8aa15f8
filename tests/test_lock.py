"""The deploy lock's shell, run for real with flock: the second holder waits, names the first,
gives up after its wait, and gets the lock as soon as the first one's input closes."""

import subprocess

from deploys.lock import lock_script


def holder(tmp_path, owner: str, wait: int = 5) -> subprocess.Popen:
    script = lock_script("app", owner, wait=wait, folder=str(tmp_path / "locks"))
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
