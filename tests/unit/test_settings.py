"""Settings are validated at start with messages that name the setting."""

from __future__ import annotations

import pytest

from config.settings import ProcessingGuarantee, Settings, SettingsError, load_settings
from streams.kafka.security import kafka_python_options


def test_sasl_needs_its_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WO_KAFKA_BOOTSTRAP", "kafka-1:9093")
    monkeypatch.setenv("WO_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    with pytest.raises(
        SettingsError, match="needs kafka_sasl_mechanism, kafka_sasl_username and kafka_sasl_password"
    ):
        load_settings()


def test_the_embedded_broker_refuses_tls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WO_KAFKA_BOOTSTRAP", raising=False)
    monkeypatch.setenv("WO_KAFKA_SECURITY_PROTOCOL", "SSL")
    with pytest.raises(SettingsError, match="embedded broker speaks PLAINTEXT"):
        load_settings()


def test_security_settings_become_every_kafka_clients_options() -> None:
    settings = Settings(
        kafka_bootstrap="kafka-1:9093,kafka-2:9093",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="wo-pipeline",
        kafka_sasl_password="s3cret",
        kafka_ssl_cafile="/etc/wo/ca.pem",
    )
    assert kafka_python_options(settings) == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "wo-pipeline",
        "sasl_plain_password": "s3cret",
        "ssl_cafile": "/etc/wo/ca.pem",
    }
    assert "s3cret" not in repr(settings)


def test_plaintext_is_the_default() -> None:
    assert kafka_python_options(Settings()) == {"security_protocol": "PLAINTEXT"}


def test_a_bad_bootstrap_address_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WO_KAFKA_BOOTSTRAP", "kafka-without-port")
    with pytest.raises(SettingsError, match=r"WO_KAFKA_BOOTSTRAP: .*expected host:port"):
        load_settings()


def test_exactly_once_on_the_embedded_broker_is_refused_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WO_KAFKA_BOOTSTRAP", raising=False)
    monkeypatch.setenv("WO_PROCESSING_GUARANTEE", "exactly_once")
    with pytest.raises(SettingsError, match="exactly_once needs Kafka transactions"):
        load_settings()


def test_exactly_once_is_accepted_with_a_kafka_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WO_KAFKA_BOOTSTRAP", "kafka-1:9092")
    monkeypatch.setenv("WO_PROCESSING_GUARANTEE", "exactly_once")
    assert load_settings().processing_guarantee is ProcessingGuarantee.exactly_once


def test_an_unknown_guarantee_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WO_PROCESSING_GUARANTEE", "exactly-once")
    with pytest.raises(SettingsError, match="WO_PROCESSING_GUARANTEE"):
        load_settings()
