"""An officer's rights are the API's (api/auth.OFFICER_RIGHTS): one table for both ways in."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from workorder_pipeline.api.auth import OFFICER_RIGHTS, Role, officer_principal
from workorder_pipeline.schemas.officers import Officer, OfficerRole
from workorder_pipeline.schemas.workorder import COMMAND_CENTER, WorkOrder

NOW = datetime(2026, 12, 6, tzinfo=UTC)


def _officer(role: OfficerRole, unit: str = "squad-1") -> Officer:
    return Officer(certificate_no="JS0682-0117", name="王强", unit=unit, role=role, created_at=NOW)


def _order(unit: str, copied_to: tuple[str, ...] = ()) -> WorkOrder:
    return WorkOrder.model_validate(
        {
            "id": "WO-1",
            "kind": "complaint",
            "status": "dispatched",
            "unit": unit,
            "priority": "P2",
            "route_key": "r",
            "created_at": NOW,
            "due_at": NOW,
            "subject": {},
            "summary": "s",
            "source_ids": ("a",),
            "first_seen_at": NOW,
            "last_seen_at": NOW,
            "copied_to": copied_to,
        }
    )


def test_every_officer_role_has_the_rights_of_an_api_role() -> None:
    assert set(OFFICER_RIGHTS) == set(OfficerRole)


@pytest.mark.parametrize("role", [OfficerRole.officer, OfficerRole.squad_leader])
def test_a_squad_officer_reads_and_acts_on_its_units_orders_only(role: OfficerRole) -> None:
    principal = officer_principal(_officer(role))
    assert principal.role is Role.unit and principal.acting_unit == "squad-1" and principal.may_act
    assert principal.may_see(_order("squad-1")) and principal.may_read_personal_data(_order("squad-1"))
    assert principal.may_see(_order("squad-2", ("squad-1",)))  # copied: read only
    assert not principal.may_read_personal_data(_order("squad-2", ("squad-1",)))
    assert not principal.may_see(_order("squad-2"))
    assert not principal.may_read_figures and not principal.may_administer


def test_a_duty_officer_acts_as_the_command_center_on_every_order() -> None:
    principal = officer_principal(_officer(OfficerRole.duty_officer, COMMAND_CENTER))
    assert principal.acting_unit == COMMAND_CENTER and principal.may_act and principal.may_read_figures
    assert principal.may_see(_order("squad-2")) and principal.may_read_personal_data(_order("squad-2"))


@pytest.mark.parametrize("role", [OfficerRole.supervisor, OfficerRole.administrator])
def test_supervisors_and_administrators_read_every_order_and_act_on_none(role: OfficerRole) -> None:
    principal = officer_principal(_officer(role, COMMAND_CENTER))
    assert principal.may_see(_order("squad-2")) and not principal.may_act
    assert not principal.may_read_personal_data(_order("squad-2"))
    assert principal.may_read_figures is (role is OfficerRole.supervisor)
    assert principal.may_administer is (role is OfficerRole.administrator)
