"""The Kafka security settings (``WO_KAFKA_SECURITY_PROTOCOL``, ``WO_KAFKA_SASL_*``,
``WO_KAFKA_SSL_*``) in each client library's form: the one place they are rendered.

kafka-python takes file names, aiokafka an SSL context, faust a credentials object.
"""

from __future__ import annotations

from typing import Any

import faust
from aiokafka.helpers import create_ssl_context

from workorder_pipeline.config.settings import Settings

_SSL_FILES = ("cafile", "certfile", "keyfile")


def kafka_python_options(settings: Settings) -> dict[str, Any]:
    """kafka-python's keywords (``KafkaProducer``, ``KafkaAdminClient``)."""
    return {"security_protocol": settings.kafka_security_protocol, **_sasl(settings), **_ssl_files(settings)}


def aiokafka_options(settings: Settings) -> dict[str, Any]:
    """aiokafka's keywords: an SSL context instead of file names."""
    options: dict[str, Any] = {"security_protocol": settings.kafka_security_protocol}
    if settings.kafka_security_protocol.endswith("SSL"):
        options["ssl_context"] = _ssl_context(settings)
    return {**options, **_sasl(settings)}


def faust_credentials(settings: Settings) -> faust.SSLCredentials | faust.SASLCredentials | None:
    """faust's ``broker_credentials`` (None: PLAINTEXT)."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = _ssl_context(settings) if protocol.endswith("SSL") else None
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    sasl = _sasl(settings)
    return faust.SASLCredentials(
        username=sasl["sasl_plain_username"],
        password=sasl["sasl_plain_password"],
        mechanism=sasl["sasl_mechanism"],
        ssl_context=context,
    )


def _sasl(settings: Settings) -> dict[str, Any]:
    if not settings.kafka_sasl_mechanism:
        return {}
    password = settings.kafka_sasl_password
    return {
        "sasl_mechanism": settings.kafka_sasl_mechanism,
        "sasl_plain_username": settings.kafka_sasl_username,
        "sasl_plain_password": password.get_secret_value() if password else None,
    }


def _ssl_files(settings: Settings) -> dict[str, str]:
    found = {name: getattr(settings, f"kafka_ssl_{name}") for name in _SSL_FILES}
    return {f"ssl_{name}": str(path) for name, path in found.items() if path is not None}


def _ssl_context(settings: Settings) -> Any:
    files = _ssl_files(settings)
    return create_ssl_context(**{name: files.get(f"ssl_{name}") for name in _SSL_FILES})
