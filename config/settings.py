"""Runtime settings: environment variables (prefix ``WO_``) over an optional TOML file.

Every setting has an embedded-mode default, so ``wo run`` works on a fresh machine.
A production deployment sets ``WO_KAFKA_BOOTSTRAP`` and ``WO_DATABASE_URL``; with a
bootstrap address set, no embedded broker is started.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Mapping
from enum import StrEnum
from pathlib import Path
from string import Formatter
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from workorder_pipeline.schemas.errors import ConfigurationError

#: Path of an optional TOML settings file; environment variables override it.
CONFIG_FILE_VAR = "WO_CONFIG_FILE"
#: Set by bin/wo to the checkout it belongs to: the checkout's ``policy/`` and ``var/`` are
#: then the defaults wherever bin/wo is started (below the environment and the TOML file).
#: Otherwise the defaults are ``policy/`` and ``var/`` of the working directory: the
#: settings never depend on where the package is installed (a deployment sets
#: WO_POLICY_DIR and WO_DATA_DIR, as deploy/Dockerfile does).
CHECKOUT_VAR = "WO_CHECKOUT"
#: Secrets named by policy/notifications.yaml live under this prefix (not settings).
SECRETS_PREFIX = "WO_NOTIFY_"
SECRETS_HINT = f" (a secret for policy/notifications.yaml? name it {SECRETS_PREFIX}...)"
POLICY_DIR_NAME = "policy"
DATA_DIR_NAME = "var"
DATABASE_FILE = "workorders.db"
#: Variables with the settings' prefix that are not settings: read by bin/wo, the test
#: runner and the tests' Kafka cluster. Any other ``WO_`` variable is refused at start.
NOT_SETTINGS = frozenset({CONFIG_FILE_VAR, CHECKOUT_VAR, "WO_KAFKA_LIB_DIR", "WO_TEST_POSTGRES_PORT"})


def _sqlite_in(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / DATABASE_FILE}"


def _checkout_defaults() -> dict[str, Any]:
    checkout = os.environ.get(CHECKOUT_VAR)
    if not checkout:
        return {}
    root = Path(checkout).absolute()
    data_dir = root / DATA_DIR_NAME
    return {"policy_dir": root / POLICY_DIR_NAME, "data_dir": data_dir, "database_url": _sqlite_in(data_dir)}


class SettingsConflict(ValueError):
    """A rule across settings (a model validator's error). pydantic reports such an error
    without a field, so the message names the settings it concerns as ``{field}``
    placeholders, rendered as the names the user sets (``WO_KAFKA_BOOTSTRAP``);
    other placeholders are filled from ``values``."""

    def __init__(self, template: str, **values: object) -> None:
        self.template = template
        self.values = values
        placeholders = [name for _, name, _, _ in Formatter().parse(template) if name]
        self.fields = tuple(dict.fromkeys(n for n in placeholders if n not in values))
        super().__init__(self.render(lambda field: field))

    def render(self, setting_name: Callable[[str], str]) -> str:
        return self.template.format(**{f: setting_name(f) for f in self.fields}, **self.values)


class ProcessingGuarantee(StrEnum):
    """What a consumer of our output topics may count on (README, "Processing guarantee")."""

    #: Works on every broker: outputs may repeat after a crash; consumers de-duplicate.
    at_least_once = "at_least_once"
    #: Needs Kafka transactions: an intake batch's outputs and input offsets commit together.
    exactly_once = "exactly_once"


class Topics(BaseModel):
    """Topic names. Defaults are the contract's; every one can be renamed."""

    # A misspelt topic (WO_TOPICS__DISPATCH, or in the settings file) is an error, not ignored.
    model_config = ConfigDict(extra="forbid")

    vehicle_alarms: str = "monitoring.vehicle-alarms"
    suspects: str = "rectification.suspects"
    checkin_failures: str = "monitoring.checkin-failures"
    complaints: str = "hotline.complaints"
    dispatched: str = "workorders.dispatched"
    dead_letters: str = "workorders.dead-letters"
    commands: str = "workorders.commands"
    lifecycle: str = "workorders.lifecycle"
    escalations: str = "workorders.escalations"

    def inbound(self) -> dict[str, str]:
        """Inbound topic name -> the contract (``schema``) it carries."""
        return {
            self.vehicle_alarms: "vehicle-alarm/1",
            self.suspects: "suspect/1",
            self.checkin_failures: "checkin-failure/1",
            self.complaints: "complaint/1",
        }

    def all(self) -> list[str]:
        return [
            *self.inbound(),
            self.dispatched,
            self.dead_letters,
            self.commands,
            self.lifecycle,
            self.escalations,
        ]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="WO_",
        env_nested_delimiter="__",
        extra="forbid",
    )

    # Kafka. None means: start the embedded Tansu broker on 127.0.0.1:embedded_broker_port.
    kafka_bootstrap: str | None = Field(
        default=None, description="host:port[,host:port]; unset = embedded broker"
    )
    embedded_broker_port: int = Field(default=19092, ge=1, le=65535)
    topic_partitions: int = Field(default=6, ge=1, le=1000)
    topic_replication_factor: int = Field(default=1, ge=1, le=10)
    consumer_group: str = "wo-pipeline"
    # Short group timeouts suit the embedded broker, which holds joins for the
    # rebalance timeout (see stack-notes); production raises them.
    kafka_rebalance_timeout_s: float = Field(default=3.0, gt=0)
    kafka_session_timeout_s: float = Field(default=10.0, gt=0)
    kafka_heartbeat_interval_s: float = Field(default=1.0, gt=0)
    # How long the broker may hold the worker's fetch when no data is there: faust
    # hard-codes 1,500 ms, and Tansu answers only when it expires, so it bounds the
    # event -> dispatched latency (streams/transport.py). Lower costs broker CPU.
    consumer_fetch_max_wait_ms: int = Field(default=100, ge=0, le=60_000)
    topics: Topics = Topics()
    processing_guarantee: ProcessingGuarantee = ProcessingGuarantee.at_least_once
    #: How long a transaction of a worker that died may hold back read_committed consumers.
    kafka_transaction_timeout_s: float = Field(default=10.0, gt=0, le=900)

    # Kafka security for production brokers (the embedded one speaks PLAINTEXT); rendered for
    # each client library by streams/kafka/security.py.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None

    # Storage.
    database_url: str = Field(default_factory=lambda: _sqlite_in(Path(DATA_DIR_NAME).absolute()))
    data_dir: Path = Field(default_factory=lambda: Path(DATA_DIR_NAME).absolute())
    #: At start, how long to wait for the database before exiting 4 with a clear error; unset:
    #: as long as it takes (the worker exits only on a signal or a configuration error).
    database_startup_wait_s: float | None = Field(default=None, ge=0)

    # Policy files (routes, units, deadlines).
    policy_dir: Path = Field(default_factory=lambda: Path(POLICY_DIR_NAME).absolute())

    # Bigger messages and event times further ahead (publishers' clock skew) go to the
    # dead-letter topic; events older than the age limit are stale (processors/admission.py).
    max_message_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    max_event_lead_minutes: float = Field(default=60, ge=0)
    max_event_age_days: float = Field(default=400, gt=0)
    # How long the original bytes of a masked dead letter (one that may hold personal data)
    # are kept; the leader deletes older ones.
    dead_letter_retention_days: float = Field(default=30, gt=0, le=3650)
    #: Where the monthly reports are kept (the leader makes last month's); unset: data_dir/reports.
    report_dir: Path | None = None

    # Intake batching: a batch is flushed when full or after this many seconds.
    intake_batch_size: int = Field(default=500, ge=1, le=100_000)
    intake_batch_seconds: float = Field(default=0.2, gt=0, le=60)
    # Batches start at most this often (0: as soon as the last one is done). Each batch costs
    # ~10 ms of CPU besides its messages; under a steady load, waiting makes fewer, larger
    # batches. A message arriving after a quiet spell does not wait.
    intake_batch_interval_ms: int = Field(default=50, ge=0, le=10_000)

    # How often the leader worker looks for reminders and escalations that came due.
    escalation_check_seconds: float = Field(default=30.0, gt=0, le=3600)
    # The figures of this month and last month are read from the database at most this often,
    # one snapshot for the leader's gauges and the console (services/figure_snapshots.py).
    figures_refresh_seconds: float = Field(default=60.0, gt=0, le=3600)

    # The work-order HTTP API (served by `wo run` when a tokens file is given).
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8080, ge=0, le=65535)
    #: YAML list of bearer tokens (hashed) with their role and unit; see README "HTTP API".
    api_tokens_file: Path | None = None
    #: The API's command-signing key (`wo keys make`); unset: made in data_dir on first start
    #: and trusted by this worker (see docs/signing.md).
    api_signing_key_file: Path | None = None
    #: `wo orders`: the API to talk to (default http://api_host:api_port) and the caller's token.
    api_url: str | None = None
    api_token: SecretStr | None = None
    #: How long a command request waits for the worker's verdict before answering 202.
    api_command_wait_s: float = Field(default=10.0, gt=0, le=120)

    # Metrics over HTTP (Prometheus text format).
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=9464, ge=0, le=65535)

    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @field_validator("kafka_bootstrap")
    @classmethod
    def _bootstrap_is_host_port_list(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        for server in value.split(","):
            host, sep, port = server.strip().rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"expected host:port[,host:port], got {server.strip()!r}")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url_is_supported(cls, value: str) -> str:
        scheme = value.split(":", 1)[0]
        if not (scheme.startswith("sqlite") or scheme.startswith("postgresql")):
            raise ValueError(
                f"expected sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/DB, got scheme {scheme!r}"
            )
        return value

    @model_validator(mode="after")
    def _kafka_security_is_complete(self) -> Settings:
        sasl_complete = self.kafka_sasl_mechanism and self.kafka_sasl_username and self.kafka_sasl_password
        if self.kafka_security_protocol.startswith("SASL") and not sasl_complete:
            raise SettingsConflict(
                "{kafka_security_protocol} {protocol} needs {kafka_sasl_mechanism}, "
                "{kafka_sasl_username} and {kafka_sasl_password}",
                protocol=self.kafka_security_protocol,
            )
        if self.kafka_security_protocol != "PLAINTEXT" and self.embedded_broker:
            raise SettingsConflict(
                "{kafka_security_protocol} {protocol}: the embedded broker speaks PLAINTEXT only; "
                "set {kafka_bootstrap} for TLS/SASL",
                protocol=self.kafka_security_protocol,
            )
        return self

    @model_validator(mode="after")
    def _exactly_once_needs_transactions(self) -> Settings:
        if self.processing_guarantee is ProcessingGuarantee.exactly_once and self.embedded_broker:
            raise SettingsConflict(
                "{processing_guarantee} exactly_once needs Kafka transactions, which the embedded broker "
                "does not have: set {kafka_bootstrap} to an Apache Kafka cluster, or use at_least_once"
            )
        return self

    @property
    def commands_consumer_group(self) -> str:
        """The commands topic's group; ``consumer_group`` is the intake consumer's (the
        inbound topics)."""
        return f"{self.consumer_group}-commands"

    @property
    def faust_app_id(self) -> str:
        """The faust app's id and group. At least once its agent consumes the commands, so it
        is the commands group; exactly once the commands consumer (streams/command_consumer)
        has that group and faust, which then only elects the leader, has its own: one group
        with two kinds of member and assignor would not form."""
        if self.processing_guarantee is ProcessingGuarantee.exactly_once:
            return f"{self.consumer_group}-leader"
        return self.commands_consumer_group

    @property
    def embedded_broker(self) -> bool:
        return self.kafka_bootstrap is None

    @property
    def bootstrap_servers(self) -> str:
        return self.kafka_bootstrap or f"127.0.0.1:{self.embedded_broker_port}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get(CONFIG_FILE_VAR)
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        sources.append(InitSettingsSource(settings_cls, init_kwargs=_checkout_defaults()))
        return tuple(sources)


class SettingsError(ConfigurationError):
    """Settings that cannot be used; the message names each bad setting."""


def load_settings() -> Settings:
    """Read and validate the settings, turning pydantic's errors into one clear message."""
    config_file = os.environ.get(CONFIG_FILE_VAR)
    if config_file and not Path(config_file).is_file():
        raise SettingsError(f"{CONFIG_FILE_VAR}={config_file}: no such file")
    unknown = unknown_variables(os.environ)
    if unknown:
        raise SettingsError("unknown settings (a misspelt name would be ignored):\n" + "\n".join(unknown))
    try:
        return Settings()
    except ValidationError as exc:
        lines = [_error_line(error, config_file) for error in exc.errors()]
        raise SettingsError("invalid settings:\n" + "\n".join(lines)) from None


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """One line per ``WO_`` variable that names no setting (nor a nested one, ``WO_TOPICS__X``),
    with the nearest setting names. ``WO_NOTIFY_*`` is the namespace of the secrets that
    policy/notifications.yaml names (robot URLs, passwords, tokens): not settings, not checked."""
    known = {_env_name(name) for name in Settings.model_fields} | NOT_SETTINGS
    known |= {f"WO_TOPICS__{name.upper()}" for name in Topics.model_fields}
    lines = []
    for variable in sorted(environ):
        name = variable.upper()  # the settings' names are not case-sensitive
        if name.startswith("WO_") and name not in known and not name.startswith(SECRETS_PREFIX):
            near = difflib.get_close_matches(name, sorted(known), n=2, cutoff=0.75)
            hint = f" (did you mean {' or '.join(near)}?)" if near else SECRETS_HINT
            lines.append(f"  {variable}: no such setting{hint}")
    return lines


def _env_name(field: str) -> str:
    return f"WO_{field.upper()}"


def _error_line(error: ErrorDetails, config_file: str | None) -> str:
    """One error, naming the settings it is about as the user sets them."""
    conflict = (error.get("ctx") or {}).get("error")
    if isinstance(conflict, SettingsConflict):
        # The message names its settings itself.
        in_file = f" (in {config_file}: {', '.join(conflict.fields)})" if config_file else ""
        return f"  {conflict.render(_env_name)}{in_file}"
    name = "__".join(str(part) for part in error["loc"])
    if not name:  # a model-level rule that is not a SettingsConflict names nothing we can add
        return f"  {error['msg']}"
    where = _env_name(name) + (f" (or {name} in {config_file})" if config_file else "")
    return f"  {where}: {error['msg']}"
