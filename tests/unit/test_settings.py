"""Settings are validated at start with messages that name the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from workorder_pipeline.config.settings import ProcessingGuarantee, Settings, SettingsError, load_settings
from workorder_pipeline.streams.kafka.security import kafka_python_options


def test_sasl_needs_its_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WO_KAFKA_BOOTSTRAP", "kafka-1:9093")
    monkeypatch.setenv("WO_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    with pytest.raises(
        SettingsError,
        match="WO_KAFKA_SECURITY_PROTOCOL SASL_SSL needs WO_KAFKA_SASL_MECHANISM, "
        "WO_KAFKA_SASL_USERNAME and WO_KAFKA_SASL_PASSWORD",
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
    with pytest.raises(SettingsError, match="exactly_once needs Kafka transactions") as refused:
        load_settings()
    assert str(refused.value).splitlines()[1] == (
        "  WO_PROCESSING_GUARANTEE exactly_once needs Kafka transactions, which the embedded broker "
        "does not have: set WO_KAFKA_BOOTSTRAP to an Apache Kafka cluster, or use at_least_once"
    )


def test_exactly_once_is_accepted_with_a_kafka_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WO_KAFKA_BOOTSTRAP", "kafka-1:9092")
    monkeypatch.setenv("WO_PROCESSING_GUARANTEE", "exactly_once")
    assert load_settings().processing_guarantee is ProcessingGuarantee.exactly_once


def test_an_unknown_guarantee_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WO_PROCESSING_GUARANTEE", "exactly-once")
    with pytest.raises(SettingsError, match="WO_PROCESSING_GUARANTEE"):
        load_settings()


RULES_ACROSS_SETTINGS = [
    ({"WO_PROCESSING_GUARANTEE": "exactly_once"}, ["WO_PROCESSING_GUARANTEE", "WO_KAFKA_BOOTSTRAP"]),
    ({"WO_KAFKA_SECURITY_PROTOCOL": "SSL"}, ["WO_KAFKA_SECURITY_PROTOCOL", "WO_KAFKA_BOOTSTRAP"]),
    (
        {"WO_KAFKA_BOOTSTRAP": "kafka-1:9093", "WO_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT"},
        ["WO_KAFKA_SECURITY_PROTOCOL", "WO_KAFKA_SASL_USERNAME", "WO_KAFKA_SASL_PASSWORD"],
    ),
]


@pytest.mark.parametrize(("environment", "variables"), RULES_ACROSS_SETTINGS)
def test_a_rule_across_settings_names_the_variables_to_change(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], variables: list[str]
) -> None:
    monkeypatch.delenv("WO_KAFKA_BOOTSTRAP", raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as refused:
        load_settings()
    message = str(refused.value)
    for variable in variables:
        assert variable in message
    assert "WO_:" not in message and "Value error" not in message
    # No setting is named by its field (TOML) name when no settings file is in use.
    fields = {name.removeprefix("WO_").lower() for name in variables}
    assert not [field for field in fields if f" {field}" in message], message


def test_a_rule_across_settings_also_names_them_as_the_settings_file_does(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "wo.toml"
    config.write_text('processing_guarantee = "exactly_once"\n')
    monkeypatch.delenv("WO_KAFKA_BOOTSTRAP", raising=False)
    monkeypatch.delenv("WO_PROCESSING_GUARANTEE", raising=False)
    monkeypatch.setenv("WO_CONFIG_FILE", str(config))
    with pytest.raises(SettingsError) as refused:
        load_settings()
    assert (
        str(refused.value)
        .splitlines()[1]
        .endswith(f"or use at_least_once (in {config}: processing_guarantee, kafka_bootstrap)")
    )


@pytest.mark.parametrize(
    ("variable", "said"),
    [
        pytest.param("WO_TOPICS__X", "  WO_TOPICS__X: no such setting", id="nested"),
        pytest.param(
            "WO_TOPICS__DISPATCH",
            "  WO_TOPICS__DISPATCH: no such setting (did you mean WO_TOPICS__DISPATCHED?)",
            id="nested-misspelt",
        ),
        pytest.param(
            "WO_KAFKA_BOOTSTRAPS",
            "  WO_KAFKA_BOOTSTRAPS: no such setting (did you mean WO_KAFKA_BOOTSTRAP?)",
            id="top-level-misspelt",
        ),
        pytest.param("wo_metrics_prot", "  wo_metrics_prot: no such setting (did you mean", id="lower-case"),
        pytest.param("WO_", "  WO_: no such setting", id="the-prefix-alone"),
    ],
)
def test_an_unknown_setting_is_refused_at_start_by_its_name(
    monkeypatch: pytest.MonkeyPatch, variable: str, said: str
) -> None:
    monkeypatch.setenv(variable, "x")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert said in str(caught.value)
    assert str(caught.value).count("no such setting") == 1


def test_every_unknown_setting_is_named_at_once_and_the_known_ones_are_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WO_TOPICS__X", "x")
    monkeypatch.setenv("WO_COLOUR", "blue")
    monkeypatch.setenv("WO_TOPICS__COMMANDS", "cmds")
    monkeypatch.setenv("WO_METRICS_PORT", "9101")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    lines = str(caught.value).splitlines()[1:]
    assert [line.split(":")[0].strip() for line in lines] == ["WO_COLOUR", "WO_TOPICS__X"]


def test_variables_of_the_launcher_and_the_test_runner_are_not_settings_but_allowed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for variable in ("WO_CHECKOUT", "WO_KAFKA_LIB_DIR", "WO_TEST_POSTGRES_PORT"):
        monkeypatch.setenv(variable, str(tmp_path))
    monkeypatch.setenv("WO_TOPICS__COMMANDS", "ops.commands")
    assert load_settings().topics.commands == "ops.commands"


def test_the_secrets_notifications_yaml_names_are_not_settings_but_allowed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WO_NOTIFY_SMS_TOKEN", "secret")
    monkeypatch.setenv("WO_NOTIFY_DINGTALK_LEADERS_SECRET", "SEC0")
    assert load_settings().metrics_port > 0


def test_a_secret_named_outside_its_namespace_is_refused_with_where_to_put_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WO_SMS_GATEWAY_TOKEN", "secret")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "WO_SMS_GATEWAY_TOKEN: no such setting" in str(caught.value)
    assert "name it WO_NOTIFY_..." in str(caught.value)
    assert "secret" not in str(caught.value).replace("a secret for", "")


def test_an_unknown_topic_in_the_settings_file_names_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "wo.toml"
    config.write_text('[topics]\ndispatch = "x"\n', encoding="utf-8")
    monkeypatch.setenv("WO_CONFIG_FILE", str(config))
    with pytest.raises(SettingsError, match=r"WO_TOPICS__DISPATCH \(or topics__dispatch in .*wo.toml\)"):
        load_settings()


def test_the_command_line_stops_on_an_unknown_setting_with_the_configuration_exit_code(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from workorder_pipeline.wo.cli import main

    monkeypatch.setenv("WO_TOPICS__X", "x")
    assert main(["orders", "list"]) == 3
    assert "WO_TOPICS__X: no such setting" in capsys.readouterr().err


def test_the_notification_secrets_named_by_the_policy_are_not_settings_but_allowed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # policy/notifications.yaml names its channels' secrets WO_NOTIFY_*: a deployment sets them.
    monkeypatch.setenv("WO_NOTIFY_SMS_TOKEN", "secret")
    monkeypatch.setenv("WO_NOTIFY_DINGTALK_LEADERS_SECRET", "SEC1")
    monkeypatch.setenv("WO_NOTIFYY", "x")  # the prefix needs its underscore
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert [line.split(":")[0].strip() for line in str(caught.value).splitlines()[1:]] == ["WO_NOTIFYY"]
