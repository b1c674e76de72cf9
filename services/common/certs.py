"""A local certificate authority for TLS and mutual TLS between quantmesh services (development and tests only).

`make certs` (= `python -m services.common.certs --out .certs`) writes, with the `cryptography` package:
- `ca.pem` / `ca.key`: a self-signed CA ("quantmesh local CA");
- `<name>.pem` / `<name>.key` for each service (router, classifier, worker): CN = the name, SANs localhost and
  127.0.0.1, usable as server AND client certificate (the router presents its own to the classifier and workers);
- `<name>.pem` / `<name>.key` for each caller (client, admin by default): client certificates, CN = the name (the
  identity `mtls_identity` refers to in a callers file, see `services.common.auth`).
Keys are ECDSA P-256, unencrypted (mode 0600); certificates last `DEFAULT_VALIDITY_DAYS`. For production, use your
own PKI and point the `tls_*` settings at its files.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_VALIDITY_DAYS = 365
DEFAULT_HOSTS = ("localhost", "127.0.0.1")
SERVICE_NAMES = ("router", "classifier", "worker")
CALLER_NAMES = ("client", "admin")


@dataclass(frozen=True)
class Issued:
    """A key and its certificate."""

    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    def write(self, directory: Path, name: str) -> tuple[Path, Path]:
        """Writes `<name>.pem` (certificate) and `<name>.key` (key, mode 0600); returns their paths."""
        directory.mkdir(parents=True, exist_ok=True)
        cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
        cert_path.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()))
        os.chmod(key_path, 0o600)
        return cert_path, key_path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "quantmesh"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey,
             validity_days: int) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=validity_days)))


def make_ca(common_name: str = "quantmesh local CA", validity_days: int = DEFAULT_VALIDITY_DAYS) -> Issued:
    """A self-signed CA certificate (basicConstraints CA:TRUE, keyCertSign)."""
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        _builder(_name(common_name), _name(common_name), key.public_key(), validity_days)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(key, certificate)


def issue(ca: Issued, common_name: str, *, server: bool, client: bool, hosts: Iterable[str] = DEFAULT_HOSTS,
          validity_days: int = DEFAULT_VALIDITY_DAYS) -> Issued:
    """A leaf certificate signed by `ca`, for server and/or client authentication.

    Args:
        ca: The issuing CA.
        common_name: The subject CN (a caller's identity for `mtls_identity`).
        server: Add serverAuth and the `hosts` as SANs (DNS names, or IP addresses when they parse as one).
        client: Add clientAuth (the CN is also added as a DNS SAN so that gRPC reports it as a peer identity).
    """
    key = ec.generate_private_key(ec.SECP256R1())
    usages = [ExtendedKeyUsageOID.SERVER_AUTH] * server + [ExtendedKeyUsageOID.CLIENT_AUTH] * client
    names: list[x509.GeneralName] = []
    for host in (*(hosts if server else ()), common_name):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    certificate = (
        _builder(_name(common_name), ca.certificate.subject, key.public_key(), validity_days)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.SubjectAlternativeName(list(dict.fromkeys(names))), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    return Issued(key, certificate)


def make_local_pki(out_dir: Path, services: Iterable[str] = SERVICE_NAMES, callers: Iterable[str] = CALLER_NAMES,
                   hosts: Iterable[str] = DEFAULT_HOSTS) -> dict[str, tuple[Path, Path]]:
    """Writes a CA, one certificate per service and per caller under `out_dir`.

    Returns:
        name -> (certificate path, key path), "ca" included.
    """
    ca = make_ca()
    written = {"ca": ca.write(out_dir, "ca")}
    for name in services:
        written[name] = issue(ca, name, server=True, client=True, hosts=hosts).write(out_dir, name)
    for name in callers:
        written[name] = issue(ca, name, server=False, client=True).write(out_dir, name)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description="Write a local CA and service/caller certificates (dev only).")
    parser.add_argument("--out", type=Path, default=Path(".certs"), help="output directory (%(default)s)")
    parser.add_argument("--host", action="append", help="SAN of the service certificates (repeatable; default "
                        + ", ".join(DEFAULT_HOSTS) + ")")
    args = parser.parse_args()
    written = make_local_pki(args.out, hosts=args.host or DEFAULT_HOSTS)
    for name, (cert, key) in written.items():
        print(f"{name:<11} {cert}  {key}")


if __name__ == "__main__":
    main()
