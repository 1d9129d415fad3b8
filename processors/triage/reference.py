"""Reference lists (whitelist, key supervision, checkpoints) indexed for the hot path."""

from __future__ import annotations

from datetime import datetime

from workorder_pipeline.schemas.policy import ReferenceData, WhitelistEntry
from workorder_pipeline.schemas.signal import Signal


class ReferenceIndex:
    """Reference data indexed for lookups on the hot path."""

    def __init__(self, reference: ReferenceData) -> None:
        self.data = reference
        self._plates = {e.plate: e for e in reference.whitelist if e.plate}
        self._enterprises = {e.enterprise_id: e for e in reference.whitelist if e.enterprise_id}
        self._key_supervision = {e.enterprise_id: e for e in reference.key_supervision}

    def whitelisted(self, signal: Signal, now: datetime) -> WhitelistEntry | None:
        """The signal's live whitelist entry (plate first, then enterprise); failing that, an
        expired one, so the explanation can say it expired."""
        by_plate = self._plates.get(signal.plate) if signal.plate else None
        by_enterprise = self._enterprises.get(signal.enterprise_id) if signal.enterprise_id else None
        if by_plate is None or by_enterprise is None:
            return by_plate if by_plate is not None else by_enterprise
        return by_enterprise if by_plate.expires_at <= now < by_enterprise.expires_at else by_plate

    def key_supervision_reason(self, enterprise_id: str | None) -> str | None:
        entry = self._key_supervision.get(enterprise_id) if enterprise_id else None
        return entry.reason if entry else None

    def checkpoint_regions(self) -> dict[str, str]:
        return self.data.checkpoints
