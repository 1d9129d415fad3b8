"""The Kafka security settings reach every client library (kafka-python, aiokafka, faust)
the same: the same account, the same trusted CA, nothing when the broker is PLAINTEXT."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

import faust
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from workorder_pipeline.config.settings import Settings
from workorder_pipeline.streams.kafka.security import (
    aiokafka_options,
    faust_credentials,
    kafka_python_options,
)


def _ca_file(path: Path, name: str) -> Path:
    """A self-signed CA certificate named ``name``, in PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return path


def _trusted_names(context: ssl.SSLContext | None) -> list[str]:
    """The common names of the CAs a TLS context trusts."""
    assert context is not None
    certificates = [x509.load_der_x509_certificate(der) for der in context.get_ca_certs(binary_form=True)]
    return [
        str(attribute.value)
        for certificate in certificates
        for attribute in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    ]


def _sasl_ssl(cafile: Path) -> Settings:
    return Settings(
        kafka_bootstrap="kafka-1:9093",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="wo-pipeline",
        kafka_sasl_password="s3cret",
        kafka_ssl_cafile=cafile,
    )


def test_every_client_logs_in_with_the_same_account_and_trusts_the_same_ca(tmp_path: Path) -> None:
    settings = _sasl_ssl(_ca_file(tmp_path / "ca.pem", "wo test CA"))

    python = kafka_python_options(settings)
    assert python["ssl_cafile"] == str(tmp_path / "ca.pem")
    account = {key: python[key] for key in ("sasl_mechanism", "sasl_plain_username", "sasl_plain_password")}
    assert account == {
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "wo-pipeline",
        "sasl_plain_password": "s3cret",
    }

    aio = aiokafka_options(settings)
    assert aio["security_protocol"] == "SASL_SSL"
    assert {key: aio[key] for key in account} == account
    assert "ssl_cafile" not in aio  # aiokafka takes a context, not files
    assert _trusted_names(aio["ssl_context"]) == ["wo test CA"]
    assert aio["ssl_context"].verify_mode is ssl.CERT_REQUIRED

    credentials = faust_credentials(settings)
    assert isinstance(credentials, faust.SASLCredentials)
    assert (credentials.username, credentials.password) == ("wo-pipeline", "s3cret")
    assert credentials.mechanism.value == "SCRAM-SHA-512"
    assert _trusted_names(credentials.ssl_context) == ["wo test CA"]


def test_tls_without_sasl_sends_no_account(tmp_path: Path) -> None:
    settings = Settings(
        kafka_bootstrap="kafka-1:9093",
        kafka_security_protocol="SSL",
        kafka_ssl_cafile=_ca_file(tmp_path / "ca.pem", "tls only CA"),
    )
    assert not any(key.startswith("sasl") for key in kafka_python_options(settings))
    aio = aiokafka_options(settings)
    assert not any(key.startswith("sasl") for key in aio)
    assert _trusted_names(aio["ssl_context"]) == ["tls only CA"]
    credentials = faust_credentials(settings)
    assert isinstance(credentials, faust.SSLCredentials)
    assert _trusted_names(credentials.context) == ["tls only CA"]


def test_sasl_without_tls_builds_no_tls_context() -> None:
    settings = Settings(
        kafka_bootstrap="kafka-1:9092",
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="PLAIN",
        kafka_sasl_username="wo-pipeline",
        kafka_sasl_password="s3cret",
    )
    assert "ssl_context" not in aiokafka_options(settings)
    credentials = faust_credentials(settings)
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.ssl_context is None


def test_a_plaintext_broker_gets_no_credentials_at_all() -> None:
    settings = Settings()
    assert aiokafka_options(settings) == {"security_protocol": "PLAINTEXT"}
    assert faust_credentials(settings) is None


def test_a_ca_file_that_is_not_a_certificate_stops_the_clients_before_they_connect(tmp_path: Path) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_bytes(b"-----BEGIN CERTIFICATE-----\n\x00\xff not base64 \n-----END CERTIFICATE-----\n")
    settings = _sasl_ssl(bad)
    with pytest.raises(ssl.SSLError):
        aiokafka_options(settings)
    with pytest.raises(ssl.SSLError):
        faust_credentials(settings)
