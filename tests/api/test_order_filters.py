"""The listing filters a monthly analysis needs (category, plate, enterprise, close date), with
the total and what follows the page: no silent cap."""

from __future__ import annotations

from tests.api.conftest import ApiWorld


def test_complaints_are_listed_by_their_ticket_s_category(api: ApiWorld) -> None:
    complaints = [o for o in api.orders() if o.kind.value == "complaint"]
    assert complaints and all(o.category is not None for o in complaints)
    assert all(o.category is None for o in api.orders() if o.kind.value != "complaint")
    category = complaints[0].category
    assert category is not None
    expected = sorted(o.id for o in complaints if o.category is category)
    response = api.client.get(
        "/orders", params={"category": category.value, "limit": 500}, headers=api.headers("supervisor")
    )
    assert response.status_code == 200, response.text
    assert sorted(o["id"] for o in response.json()) == expected
    assert response.headers["X-Total-Count"] == str(len(expected))


def test_orders_are_listed_by_plate_and_by_enterprise(api: ApiWorld) -> None:
    everything = api.orders()
    plate = next(o.subject.plate for o in everything if o.subject.plate)
    enterprise = next(o.subject.enterprise_id for o in everything if o.subject.enterprise_id)
    for name, value, expected in (
        ("plate", plate, sorted(o.id for o in everything if o.subject.plate == plate)),
        (
            "enterprise_id",
            enterprise,
            sorted(o.id for o in everything if o.subject.enterprise_id == enterprise),
        ),
    ):
        response = api.client.get("/orders", params={name: value}, headers=api.headers("supervisor"))
        assert response.status_code == 200, response.text
        assert sorted(o["id"] for o in response.json()) == expected


def test_a_page_says_how_many_match_and_how_many_follow_it(api: ApiWorld) -> None:
    total = len(api.orders())
    assert total > 3
    first = api.client.get("/orders", params={"limit": 2}, headers=api.headers("supervisor"))
    assert first.headers["X-Total-Count"] == str(total)
    assert first.headers["X-Remaining-Count"] == str(total - 2)
    last = api.client.get(
        "/orders", params={"limit": 2, "offset": total - 1}, headers=api.headers("supervisor")
    )
    assert len(last.json()) == 1
    assert last.headers["X-Remaining-Count"] == "0"


def test_a_close_date_window_lists_only_orders_closed_in_it(api: ApiWorld) -> None:
    response = api.client.get(
        "/orders",
        params={"closed_from": "2000-01-01T00:00:00+08:00", "closed_to": "2000-02-01T00:00:00+08:00"},
        headers=api.headers("supervisor"),
    )
    assert response.status_code == 200, response.text
    assert response.json() == []
    assert response.headers["X-Total-Count"] == "0"
    bad = api.client.get(
        "/orders", params={"closed_from": "2026-11-01T00:00:00"}, headers=api.headers("supervisor")
    )
    assert bad.status_code == 422
