"""Secrets read back from a host without their text in any output: the host encrypts the
file to a key pair the controller makes for this run and keeps in memory alone (RSA-OAEP,
SHA-256, by the host's openssl), so the fact's output that pyinfra prints with ``-vvv`` or
``--debug-facts`` is a ciphertext nobody can open once the run ends."""

from __future__ import annotations

import base64
import functools
import shlex

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from pyinfra.api import FactBase

OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
OPENSSL_OAEP = " ".join(
    f"-pkeyopt {option}"
    for option in ("rsa_padding_mode:oaep", "rsa_oaep_md:sha256", "rsa_mgf1_md:sha256")
)


@functools.cache
def run_key() -> rsa.RSAPrivateKey:
    """This run's key pair: made once, never written anywhere."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_key() -> str:
    """The run's public key, PEM then base64 (one word for a command line: not a secret)."""
    pem = (
        run_key()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return base64.b64encode(pem).decode()


def unseal(sealed: str) -> str:
    """The text of a file SealedFile read, opened with the run's private key."""
    return run_key().decrypt(base64.b64decode(sealed), OAEP).decode()


class SealedFile(FactBase):
    """A root-only file's text encrypted to the run's key (base64), ``None`` when the file
    does not exist. Fails (the run stops) when the host cannot encrypt it: openssl missing
    or failing, never a silent ``None`` that would make a new secret."""

    def command(self, path: str, key: str) -> str:
        """openssl encrypts the file to ``key`` (public_key()'s), read from its input; an
        RSA ciphertext is never empty, so an empty one is openssl's failure."""
        quoted = shlex.quote(path)
        sealed = (
            f"printf %s {shlex.quote(key)} | base64 -d | openssl pkeyutl -encrypt -pubin"
            f" -inkey /dev/stdin {OPENSSL_OAEP} -in {quoted} | base64 -w0"
        )
        return (
            f"if [ -f {quoted} ]; then"
            " command -v openssl >/dev/null || { echo 'openssl is missing' >&2; exit 1; };"
            f' out=$({sealed}) && [ -n "$out" ] && echo "$out"; fi'
        )

    def process(self, output):
        """The ciphertext, or None for no file."""
        text = "".join(output).strip()
        return text or None
