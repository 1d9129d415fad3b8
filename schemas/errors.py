"""The product's exceptions: one base, a few branches by what the caller can do about it.

Every exception the product raises on purpose derives from :class:`WorkOrderError`,
through the branch that says what kind of failure it is; a leaf lives next to the code that
raises it (it subclasses its branch here). The command line turns branches into exit codes
in one table (wo/errors.py, ``EXIT_CODES``). The hierarchy::

    WorkOrderError
    ├── ConfigurationError       what the user configured cannot be used
    │   ├── SettingsError            config.settings
    │   ├── PolicyError              services.policy_files
    │   └── TransactionsUnavailable  streams.outputs (the broker has no transactions)
    ├── UnavailableError         a server the work needs did not answer
    │   ├── Unreachable              wo.errors (the API, the broker, for a CLI command)
    │   ├── DatabaseUnavailable      storage.database
    │   └── CommandNotPublished      services.ports (the API's commands topic)
    ├── BrokerError              the broker refused or failed what we asked of it
    │   ├── TopicSetupError          streams.kafka.admin
    │   │   └── TopicSetupTimedOut       streams.kafka.admin (no answer in time: waited for)
    │   └── BrokerStartError         wo.embedded_broker
    ├── InputError               a file or value given to a command is unusable
    │   ├── PublishError             wo.publish
    │   └── SigningKeyError          services.sender_keys
    └── Interrupted              work set aside, to be done again (never shown to a person)
        ├── DedupeSlotTaken          storage.dedupe_slots (lost a race: the batch runs again)
        ├── TopicsNotReady           streams.resilience (retried until the topics are back)
        └── Stopped                  streams.resilience (the worker is stopping)
            ├── PartitionsLost           streams.transactions (a partition's transaction failed)
            └── PartitionNotHeld         streams.transactions (no producer for the partition)

Here (schemas/) because every layer may import it, the settings included.
"""

from __future__ import annotations


class WorkOrderError(Exception):
    """Base class of every exception this product raises on purpose."""


class ConfigurationError(WorkOrderError):
    """Settings, policy files or the broker's capabilities do not allow the work to start."""


class UnavailableError(WorkOrderError):
    """A server the work needs (database, broker, API) did not answer; trying later may work."""


class BrokerError(WorkOrderError):
    """The broker answered, but refused or failed what was asked of it."""


class InputError(WorkOrderError):
    """A file or value handed to a command cannot be used as it is."""


class Interrupted(WorkOrderError):
    """Work set aside on purpose, to be done again; handled inside the worker."""
