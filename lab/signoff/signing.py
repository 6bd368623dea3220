"""SSH signatures through ``ssh-keygen -Y``: sign a payload with an approver's key, verify it
against an ``allowed_signers`` file, find which principal a key belongs to.

Only the key's *path* is ever given to ssh-keygen (``-f``); lab never reads a private key,
never puts one on a command line and never stores one. Payloads go through stdin; signatures
and allowed_signers text through files in a private temporary directory.
"""

from __future__ import annotations

import functools
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from lab.errors import ConfigError, InfrastructureError
from lab.util.atomic import write_text

NAMESPACE = "lab-approval"
TIMEOUT = 60.0
PROBE = b"lab: which principal is this key?\n"


@dataclass(frozen=True)
class Verification:
    """The outcome of verifying one signature: ``ok``, or ``problem`` saying why not."""

    ok: bool
    problem: str = ""


def keygen(args: list[str], stdin: bytes) -> subprocess.CompletedProcess[bytes]:
    """Run ``ssh-keygen ARGS`` with ``stdin``; InfrastructureError when it cannot run at all."""
    try:
        return subprocess.run(["ssh-keygen", *args], input=stdin, capture_output=True, timeout=TIMEOUT, check=False)
    except FileNotFoundError:
        raise InfrastructureError("ssh-keygen not found; install OpenSSH (Debian: apt-get install openssh-client)") \
            from None
    except subprocess.TimeoutExpired:
        raise InfrastructureError(f"ssh-keygen did not finish in {TIMEOUT:.0f}s (a passphrase prompt? use "
                                  "ssh-agent for protected keys)") from None


def first_line(output: bytes) -> str:
    lines = [line for line in output.decode("utf-8", "replace").splitlines()
             if line.strip() and not line.startswith("Signing data on standard input")]
    return lines[0].strip() if lines else "no message"


def sign(payload: bytes, key: Path, namespace: str = NAMESPACE) -> str:
    """The armored SSH signature of ``payload`` by the private key at ``key``, in ``namespace``
    (``lab-approval`` for approvals and waivers; audit checkpoints have their own)."""
    if not key.is_file():
        raise ConfigError(f"no key at {key}; give the path of your SSH private key (e.g. ~/.ssh/id_ed25519)")
    result = keygen(["-Y", "sign", "-q", "-f", str(key), "-n", namespace], payload)
    signature = result.stdout.decode("ascii", "replace")
    if result.returncode != 0 or "BEGIN SSH SIGNATURE" not in signature:
        raise ConfigError(f"ssh-keygen could not sign with {key}: {first_line(result.stderr)}")
    return signature


def verify(payload: bytes, signature: str, principal: str, allowed_signers: Path | None,
           namespace: str = NAMESPACE) -> Verification:
    """Whether ``signature`` is ``principal``'s signature of ``payload`` in ``namespace`` (default
    ``lab-approval``) by a key that ``allowed_signers`` lists for that principal (and namespace)."""
    if allowed_signers is None:
        return Verification(False, "no allowed_signers file is configured (allowed_signers in agreement.yml)")
    if not allowed_signers.is_file():
        return Verification(False, f"allowed_signers file {allowed_signers} does not exist")
    if "BEGIN SSH SIGNATURE" not in signature:
        return Verification(False, "not an SSH signature")
    return verified(payload, signature, principal, allowed_signers, allowed_signers.read_bytes(), namespace)


@functools.lru_cache(maxsize=1024)
def verified(payload: bytes, signature: str, principal: str, allowed_signers: Path, listed: bytes,
             namespace: str = NAMESPACE) -> Verification:
    """``verify``'s ssh-keygen run, remembered for this process by everything its outcome depends
    on (``listed`` is the allowed_signers content, so an edited file is checked afresh): one
    command decides several gates and renders reports over the same records, each checked once."""
    with tempfile.TemporaryDirectory(prefix="lab-verify-") as scratch:
        sig = Path(scratch) / "payload.sig"
        write_text(sig, signature, 0o600)
        result = keygen(["-Y", "verify", "-f", str(allowed_signers), "-I", principal, "-n", namespace,
                         "-s", str(sig)], payload)
    if result.returncode == 0:
        return Verification(True)
    return Verification(False, f"signature does not verify as {principal} against {allowed_signers.name}: "
                               f"{first_line(result.stderr + result.stdout)}")


def verify_with_text(payload: bytes, signature: str, principal: str, allowed_signers_text: str,
                     namespace: str = NAMESPACE) -> Verification:
    """``verify`` against allowed_signers given as text (e.g. embedded in an evidence bundle)."""
    with tempfile.TemporaryDirectory(prefix="lab-signers-") as scratch:
        path = Path(scratch) / "allowed_signers"
        write_text(path, allowed_signers_text, 0o600)
        return verify(payload, signature, principal, path, namespace)


def principals_of(key: Path, allowed_signers: Path | None, namespace: str = NAMESPACE) -> list[str]:
    """The principals ``allowed_signers`` lists for ``key`` in ``namespace`` (found by signing a probe
    and asking ``ssh-keygen -Y find-principals``); empty when the key is not listed."""
    if allowed_signers is None or not allowed_signers.is_file():
        return []
    probe = sign(PROBE, key, namespace)
    with tempfile.TemporaryDirectory(prefix="lab-probe-") as scratch:
        sig = Path(scratch) / "probe.sig"
        write_text(sig, probe, 0o600)
        result = keygen(["-Y", "find-principals", "-s", str(sig), "-f", str(allowed_signers)], b"")
    if result.returncode != 0:
        return []
    return [line.strip() for line in result.stdout.decode("utf-8", "replace").splitlines() if line.strip()]


def signer_identity(key: Path, allowed_signers: Path | None, claimed: str | None,
                    namespace: str = NAMESPACE) -> str:
    """The principal a record signed with ``key`` is recorded under: ``claimed`` (``--as``) if given,
    else the one principal allowed_signers lists for the key (in ``namespace``); ConfigError when
    that is unclear."""
    if claimed:
        return claimed
    found = principals_of(key, allowed_signers, namespace)
    if len(found) == 1:
        return found[0]
    where = str(allowed_signers) if allowed_signers else "no allowed_signers file (set one in agreement.yml)"
    if not found:
        raise ConfigError(f"the key {key} is not listed in {where}; add its public key there for your principal, "
                          "or say who you are with --as PRINCIPAL")
    raise ConfigError(f"the key {key} is listed for several principals ({', '.join(found)}); pick one with --as")
