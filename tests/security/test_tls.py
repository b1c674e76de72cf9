"""The local CA (`make certs`), the TLS settings' validation, and prompt size limits."""

from __future__ import annotations

import ipaddress

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtendedKeyUsageOID
from pydantic import ValidationError

from core.errors import InvalidArgumentError
from services.common import tls
from services.common.certs import make_ca, make_local_pki
from services.common.limits import validate_prompt_size
from services.common.settings import ServerSettings


def load(path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_local_pki_issues_verifiable_service_and_caller_certificates(tmp_path) -> None:
    written = make_local_pki(tmp_path)
    assert set(written) == {"ca", "router", "classifier", "worker", "client", "admin"}
    ca = load(written["ca"][0])
    for name, (cert_path, key_path) in written.items():
        assert oct(key_path.stat().st_mode & 0o777) == "0o600"
        if name == "ca":
            continue
        cert = load(cert_path)
        cert.verify_directly_issued_by(ca)  # raises if not signed by the CA
        usages = set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        if name in ("client", "admin"):
            assert usages == {ExtendedKeyUsageOID.CLIENT_AUTH}
            assert sans.get_values_for_type(x509.DNSName) == [name]
        else:
            assert usages == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
            assert ipaddress.ip_address("127.0.0.1") in sans.get_values_for_type(x509.IPAddress)
            assert "localhost" in sans.get_values_for_type(x509.DNSName)


def test_a_certificate_from_another_ca_does_not_verify(tmp_path) -> None:
    written = make_local_pki(tmp_path)
    other = make_ca()  # same name as the local CA, different key: only the signature tells them apart
    with pytest.raises(InvalidSignature):
        load(written["client"][0]).verify_directly_issued_by(other.certificate)


def test_tls_is_off_by_default_and_validated_when_on(tmp_path) -> None:
    assert tls.server_credentials(ServerSettings()) is None
    assert tls.channel_credentials(ServerSettings()) is None
    written = make_local_pki(tmp_path)
    cert, key = written["router"]
    with pytest.raises(ValidationError, match="together"):
        ServerSettings(tls_cert_file=cert)
    with pytest.raises(ValidationError, match="mutual TLS"):
        ServerSettings(tls_client_ca_file=written["ca"][0])
    on = ServerSettings(tls_cert_file=cert, tls_key_file=key, tls_client_ca_file=written["ca"][0],
                        tls_ca_file=written["ca"][0])
    assert tls.server_credentials(on) is not None
    assert tls.channel_credentials(on) is not None


def test_prompt_size_limit_names_the_field_without_echoing_the_text() -> None:
    validate_prompt_size("é" * 10, 20)
    with pytest.raises(InvalidArgumentError) as refused:
        validate_prompt_size("secret " + "é" * 10, 20)
    assert refused.value.message == "prompt: 27 bytes, over the 20-byte limit"
