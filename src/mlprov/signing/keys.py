"""Keys: load signers from PEM files or securesystemslib URIs, load public keys, make key pairs.

Signing goes through securesystemslib's `Signer` machinery (file2:, gcpkms:, awskms:,
azurekms:, hsm:, hv:), so mlprov never rewrites a KMS or HSM client. A bare path is a
PEM PKCS#8 private key, optionally encrypted (the passphrase comes from an environment
variable or the caller, never from the command line).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509 import load_pem_x509_certificate
from securesystemslib.exceptions import UnsupportedLibraryError
from securesystemslib.signer import CryptoSigner, Key, Signer, SSlibKey

from mlprov.errors import InputError
from mlprov.fsio import read_input

KeyType = Literal["ed25519", "ecdsa-p256", "ecdsa-p384", "rsa-3072"]
KEY_TYPES: tuple[str, ...] = get_args(KeyType)

#: URI schemes of securesystemslib signers whose key lives elsewhere (KMS, HSM, Vault).
REMOTE_SCHEMES = ("gcpkms", "awskms", "azurekms", "hsm", "hv")
#: The mlprov extra that installs each remote scheme's client (securesystemslib's extras).
SCHEME_EXTRAS = {"awskms": "aws", "gcpkms": "gcp", "azurekms": "azure", "hsm": "hsm", "hv": "vault"}
#: Upper bound on a key file, so a wrong path to a huge file fails fast.
MAX_KEY_BYTES = 1 << 20


def _read_key_file(path: Path, what: str) -> bytes:
    return read_input(path, limit=MAX_KEY_BYTES, what=what)


def _password_from_env(password_env: str | None) -> bytes | None:
    if password_env is None:
        return None
    value = os.environ.get(password_env)
    if value is None:
        raise InputError(f"environment variable {password_env} (the key passphrase) is not set")
    return value.encode()


#: RSA signature schemes mlprov signs with: PSS (securesystemslib's default) and PKCS#1 v1.5
#: (what slsa-verifier and Go's sigstore verifiers check RSA signatures as).
RSA_SCHEMES = ("rsassa-pss-sha256", "rsa-pkcs1v15-sha256")


def check_scheme(key_type: str, scheme: str | None) -> None:
    """A signature scheme may be chosen for RSA keys only, among RSA_SCHEMES."""
    if scheme is None:
        return
    if not key_type.startswith("rsa"):
        raise InputError(f"--scheme {scheme} is for RSA keys; a {key_type} key has one scheme")
    if scheme not in RSA_SCHEMES:
        raise InputError(f"unknown RSA scheme {scheme!r}; choose one of {', '.join(RSA_SCHEMES)}")


def with_rsa_scheme(signer: Signer, scheme: str | None) -> Signer:
    """The same RSA key signing with `scheme` (a PEM file does not record one)."""
    if scheme is None or signer.public_key.scheme == scheme:
        return signer
    check_scheme(signer.public_key.keytype, scheme)
    if not isinstance(signer, CryptoSigner):
        raise InputError(f"--scheme needs a local key file; {type(signer).__name__} signs as is")
    private: Any = signer._private_key
    return CryptoSigner(private, SSlibKey.from_crypto(private.public_key(), scheme=scheme))


def scheme_variants(key: Key) -> list[Key]:
    """The key, and for an RSA key read without a recorded scheme its other RSA scheme.

    A PEM public key says nothing about the scheme, so an RSA signature is accepted as
    PSS or PKCS#1 v1.5 with SHA-256: both by the one trusted key, counted once.
    """
    if not (isinstance(key, SSlibKey) and key.keytype == "rsa" and key.scheme in RSA_SCHEMES):
        return [key]
    others = [
        SSlibKey(key.keyid, key.keytype, scheme, dict(key.keyval))
        for scheme in RSA_SCHEMES
        if scheme != key.scheme
    ]
    return [key, *others]


def spki_keyid(key: Key) -> str:
    """slsa-verifier's default key id: `SHA256:` + unpadded base64 of sha256(DER SPKI)."""
    import base64

    der = _spki(key, serialization.Encoding.DER)
    return "SHA256:" + base64.b64encode(hashlib.sha256(der).digest()).decode().rstrip("=")


def key_names(key: Key) -> set[str]:
    """Every keyid that names this key: securesystemslib's and slsa-verifier's (SPKI)."""
    names = {key.keyid}
    with contextlib.suppress(InputError, ValueError):
        names.add(spki_keyid(key))
    return names


def load_private_key_pem(path: Path, *, password: bytes | None = None) -> CryptoSigner:
    """A CryptoSigner for a PEM private key file (PKCS#8, PKCS#1 or SEC1; maybe encrypted)."""
    data = _read_key_file(path, "private key")
    try:
        private = serialization.load_pem_private_key(data, password=password)
    except TypeError:
        if password is None:
            raise InputError(
                f"{path} is encrypted: give its passphrase with --password-env VAR"
            ) from None
        raise InputError(f"{path} is not encrypted, but a passphrase was given") from None
    except ValueError as exc:
        text = str(exc).lower()
        # A wrong passphrase decrypts to garbage: the error may name the password, a bad
        # decrypt, or only the garbage that could not be parsed.
        encrypted = b"ENCRYPTED" in data
        if password is not None and (encrypted or "password" in text or "decrypt" in text):
            raise InputError(f"{path}: wrong passphrase") from None
        raise InputError(f"{path} is not a PEM private key") from None
    except Exception:  # cryptography raises UnsupportedAlgorithm and others for junk
        raise InputError(f"{path} is not a usable PEM private key") from None
    try:
        return CryptoSigner(private)
    except ValueError as exc:
        raise InputError(f"{path}: unsupported key ({exc})") from None


def load_signer(
    uri: str,
    *,
    password_env: str | None = None,
    password: bytes | None = None,
    public_key: Key | None = None,
) -> Signer:
    """A signer for a PEM private key path or any securesystemslib private-key URI.

    `password_env` names the environment variable holding a PEM key's passphrase
    (`password` gives it directly). Remote URIs (KMS, HSM, Vault) need the signer's
    `public_key`; for gcpkms: and awskms: it is fetched from the service when not given.
    """
    if password is None:
        password = _password_from_env(password_env)
    path = pem_key_path(uri)
    if path is not None:
        return load_private_key_pem(path, password=password)
    scheme, _, rest = uri.partition(":")
    if public_key is None:
        public_key = _import_remote_public_key(scheme, rest)
    try:
        return Signer.from_priv_key_uri(uri, public_key)
    except UnsupportedLibraryError:
        raise _missing_extra(scheme) from None
    except Exception as exc:  # each backend raises its own kinds
        raise InputError(f"cannot load signer {uri}: {exc}") from None


def _missing_extra(scheme: str) -> InputError:
    extra = SCHEME_EXTRAS.get(scheme, scheme)
    return InputError(f"{scheme}: keys need pip install 'mlprov[{extra}]'")


def pem_key_path(uri: str) -> Path | None:
    """The file of a PEM private key given as a path or `file2:PATH`; None for remote URIs."""
    scheme, sep, rest = uri.partition(":")
    if not sep or len(scheme) < 2 or scheme not in (CryptoSigner.SCHEME, *REMOTE_SCHEMES):
        return Path(uri)  # a path (also "C:\\..." or "./x:y")
    if scheme == CryptoSigner.SCHEME:
        return Path(rest)
    return None


def _import_remote_public_key(scheme: str, rest: str) -> Key:
    """Ask the KMS for the public half of a remote key (network; gcpkms and awskms only)."""
    try:
        if scheme == "gcpkms":
            from securesystemslib.signer import GCPSigner

            return GCPSigner.import_(rest)[1]
        if scheme == "awskms":
            from securesystemslib.signer import AWSSigner

            return AWSSigner.import_(rest)[1]
    except UnsupportedLibraryError:
        raise _missing_extra(scheme) from None
    except Exception as exc:
        raise InputError(f"cannot fetch the public key of {scheme}:{rest}: {exc}") from None
    raise InputError(
        f"a {scheme}: key needs its public key: pass public_key (CLI: --public-key PUB)"
    )


def key_from_crypto(public: Any, *, keyid: str | None = None) -> SSlibKey:
    """An SSlibKey (default scheme for its type) for a pyca/cryptography public key."""
    try:
        return SSlibKey.from_crypto(public, keyid)
    except ValueError as exc:
        raise InputError(f"unsupported public key: {exc}") from None


def load_public_key(path: Path) -> Key:
    """A public key from PEM SubjectPublicKeyInfo, an X.509 certificate or securesystemslib JSON."""
    path = Path(path)
    data = _read_key_file(path, "public key")
    text = data.lstrip()
    if text.startswith(b"{"):
        return _key_from_json(data, str(path))
    if text.startswith(b"-----BEGIN CERTIFICATE"):
        try:
            cert = load_pem_x509_certificate(data)
        except ValueError:
            raise InputError(f"{path}: not a valid PEM certificate") from None
        return key_from_crypto(cert.public_key())
    if b"PRIVATE KEY" in data:
        raise InputError(f"{path} holds a private key; give the public key (NAME.pub)")
    try:
        public = serialization.load_pem_public_key(data)
    except Exception:
        raise InputError(f"{path} is not a PEM public key") from None
    return key_from_crypto(public)


def _key_from_json(data: bytes, source: str) -> Key:
    try:
        raw = json.loads(data)
    except (ValueError, RecursionError):
        raise InputError(f"{source}: not valid JSON") from None
    if not isinstance(raw, dict):
        raise InputError(f"{source}: a securesystemslib key must be a JSON object")
    raw = dict(raw)
    keyid = raw.pop("keyid", None)
    try:
        if keyid is None:
            from securesystemslib.signer._utils import compute_default_keyid

            keyid = compute_default_keyid(raw["keytype"], raw["scheme"], raw["keyval"])
        if not isinstance(keyid, str):
            raise InputError(f"{source}: keyid must be a string")
        key = Key.from_dict(keyid, raw)
        if isinstance(key, SSlibKey):
            key._crypto_key()  # parse the key material now, not at verification time
        return key
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"{source}: not a usable securesystemslib key ({exc})") from None


def public_pem(key: Key) -> bytes:
    """PEM SubjectPublicKeyInfo of a key."""
    return _spki(key, serialization.Encoding.PEM)


def _spki(key: Key, encoding: serialization.Encoding) -> bytes:
    if not isinstance(key, SSlibKey):
        raise InputError(f"key {key.keyid} ({key.keytype}) has no SubjectPublicKeyInfo")
    public: Any = key._crypto_key()
    spki: bytes = public.public_bytes(encoding, serialization.PublicFormat.SubjectPublicKeyInfo)
    return spki


def pem_hint(key: Key) -> str:
    """OMS/cosign key hint: hex sha256 of the PEM SubjectPublicKeyInfo."""
    return hashlib.sha256(public_pem(key)).hexdigest()


@dataclass(frozen=True)
class KeyPair:
    """A freshly generated key pair: PEM bytes of both halves and the keyid."""

    private_pem: bytes
    public_pem: bytes
    keyid: str
    key: SSlibKey


def generate_keypair(
    key_type: str = "ecdsa-p256", *, password: bytes | None = None, scheme: str | None = None
) -> KeyPair:
    """Generate a key pair; the private half is PKCS#8 PEM, encrypted when `password` is given.

    `scheme` (RSA only) sets the scheme the returned key and keyid are for.
    """
    check_scheme(key_type, scheme)
    private: Any
    if key_type == "ed25519":
        private = ed25519.Ed25519PrivateKey.generate()
    elif key_type == "ecdsa-p256":
        private = ec.generate_private_key(ec.SECP256R1())
    elif key_type == "ecdsa-p384":
        private = ec.generate_private_key(ec.SECP384R1())
    elif key_type == "rsa-3072":
        private = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    else:
        raise InputError(f"unknown key type {key_type!r}; choose one of {', '.join(KEY_TYPES)}")
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    key = (
        SSlibKey.from_crypto(private.public_key(), scheme=scheme)
        if scheme
        else key_from_crypto(private.public_key())
    )
    return KeyPair(private_pem=private_pem, public_pem=public_pem(key), keyid=key.keyid, key=key)
