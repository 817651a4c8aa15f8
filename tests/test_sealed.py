"""Secrets read back sealed (deploys/ops/sealed.py): SealedFile's command run here, by this
machine's openssl as a host runs it, and its real output opened with the run's key alone."""

from __future__ import annotations

import base64
import subprocess

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from deploys.ops import sealed
from deploys.ops.sealed import SealedFile, public_key, unseal


def read(path, key: str) -> subprocess.CompletedProcess:
    """SealedFile's command for ``path`` run by sh, as pyinfra runs a fact's."""
    command = SealedFile().command(path=str(path), key=key)
    return subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=False)


def test_the_output_is_ciphertext_only_the_run_opens(tmp_path):
    secret = tmp_path / "board.password"
    secret.write_text("Xq7" * 13 + "z\n")
    result = read(secret, public_key())
    assert result.returncode == 0 and result.stderr == ""
    output = SealedFile().process(result.stdout.splitlines())
    assert "Xq7" not in result.stdout and public_key() not in result.stdout
    assert unseal(output) == "Xq7" * 13 + "z\n"
    again = SealedFile().process(read(secret, public_key()).stdout.splitlines())
    assert again != output  # OAEP is randomised: no two outputs alike
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(ValueError):  # another run's key opens nothing
        other.decrypt(base64.b64decode(output), sealed.OAEP)


def test_no_file_is_none_and_a_failure_stops_the_run(tmp_path):
    missing = read(tmp_path / "none.password", public_key())
    assert missing.returncode == 0 and SealedFile().process(missing.stdout.splitlines()) is None
    secret = tmp_path / "board.password"
    secret.write_text("secret\n")
    broken = read(secret, "bm90IGEga2V5")  # "not a key": openssl fails, the fact fails
    assert broken.returncode != 0 and broken.stdout == ""


def test_the_command_line_holds_the_public_key_alone():
    key = public_key()
    pem = base64.b64decode(key).decode()
    assert pem.startswith("-----BEGIN PUBLIC KEY-----") and "PRIVATE" not in pem
    command = SealedFile().command(path="/etc/flask-deploy/databases/board.password", key=key)
    assert key in command and "-pubin" in command
