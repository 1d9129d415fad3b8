"""Plates are normalized and validated before use; wire times need an offset and become UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import TypeAdapter, ValidationError

from workorder_pipeline.schemas.plates import Plate, mask_plate, normalize_plate
from workorder_pipeline.schemas.times import UtcDatetime, for_people

PLATE = TypeAdapter(Plate)
UTC_TIME = TypeAdapter(UtcDatetime)


# ---------------------------------------------------------------- normalization


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        pytest.param("苏Ｆ１２３４５", "苏F12345", id="full-width-letter-and-digits"),
        pytest.param("苏Ｆ３Ｔ８２７", "苏F3T827", id="full-width-sample-plate"),
        pytest.param("苏f12345", "苏F12345", id="lower-case"),
        pytest.param("苏f 6b789", "苏F6B789", id="lower-case-with-space"),
        pytest.param(" 苏F 123 45 ", "苏F12345", id="spaces-anywhere"),
        pytest.param("苏F\u300012345", "苏F12345", id="ideographic-space"),
        pytest.param("苏F·12345", "苏F12345", id="middle-dot-separator"),
        pytest.param("苏Ｆ·１２３４５", "苏F12345", id="full-width-with-middle-dot"),
        pytest.param("苏F•12345", "苏F12345", id="bullet-separator"),
        pytest.param("苏F-12345", "苏F12345", id="hyphen-separator"),
        pytest.param("苏F.12345", "苏F12345", id="full-stop-separator"),
        pytest.param("苏F．12345", "苏F12345", id="full-width-full-stop-separator"),
        pytest.param("苏fd·73519", "苏FD73519", id="new-energy-lower-case-with-dot"),
    ],
)
def test_plate_variants_are_normalized_to_one_spelling(raw: str, normalized: str) -> None:
    assert normalize_plate(raw) == normalized
    assert PLATE.validate_python(raw) == normalized


def test_normalizing_a_normalized_plate_changes_nothing() -> None:
    assert normalize_plate(normalize_plate("苏ｆ·１２３４５")) == "苏F12345"


def test_full_width_plate_is_normalized_before_use() -> None:
    # The same vehicle written two ways must be one key: alarms and complaints meet on it.
    assert PLATE.validate_python("苏Ｆ３Ｔ８２７") == PLATE.validate_python("苏F3T827")


# ---------------------------------------------------------------- valid shapes


@pytest.mark.parametrize(
    "plate",
    [
        pytest.param("苏F12345", id="ordinary-7-chars"),
        pytest.param("苏A8M217", id="ordinary-with-letters-in-serial"),
        pytest.param("皖K3C529", id="another-province"),
        pytest.param("京A00000", id="all-digit-serial"),
        pytest.param("苏FD12345", id="new-energy-8-chars"),
        pytest.param("苏FD73519", id="new-energy-sample"),
        pytest.param("苏F1234挂", id="trailer"),
        pytest.param("苏F1234学", id="driving-school-car"),
        pytest.param("粤Z1234港", id="hong-kong-crossing"),
    ],
)
def test_valid_plates_are_accepted_as_they_are(plate: str) -> None:
    assert PLATE.validate_python(plate) == plate


# ---------------------------------------------------------------- invalid shapes


@pytest.mark.parametrize(
    "plate",
    [
        pytest.param("ABC123", id="no-province"),
        pytest.param("港F12345", id="not-a-province-character"),
        pytest.param("中F12345", id="unknown-province-character"),
        pytest.param("苏112345", id="office-is-a-digit"),
        pytest.param("苏F1234", id="too-short"),
        pytest.param("苏F", id="only-prefix"),
        pytest.param("", id="empty"),
        pytest.param("苏F1234567", id="too-long"),
        pytest.param("苏F1234O", id="letter-O-in-serial"),
        pytest.param("苏FI2345", id="letter-I-in-serial"),
        pytest.param("苏FDO2345", id="letter-O-in-new-energy-serial"),
        pytest.param("苏F12345挂", id="trailer-with-five-serial-characters"),
        pytest.param("苏F123挂", id="trailer-too-short"),
        pytest.param("苏F1234领", id="unknown-suffix"),
        pytest.param("苏F12#45", id="punctuation-in-serial"),
    ],
)
def test_invalid_plates_are_rejected(plate: str) -> None:
    with pytest.raises(ValidationError, match="not a valid plate"):
        PLATE.validate_python(plate)


def test_a_plate_that_is_not_text_is_rejected() -> None:
    with pytest.raises(ValidationError):
        PLATE.validate_python(12345)


# ---------------------------------------------------------------- masking


@pytest.mark.parametrize(
    ("plate", "masked", "serial"),
    [
        pytest.param("苏F12345", "苏F***45", "123", id="ordinary"),
        pytest.param("苏FD12345", "苏F***45", "D123", id="new-energy"),
        pytest.param("苏F1234挂", "苏F***4挂", "123", id="trailer"),
    ],
)
def test_mask_plate_keeps_the_region_and_hides_the_serial(plate: str, masked: str, serial: str) -> None:
    shown = mask_plate(plate)
    assert shown == masked
    assert shown.startswith(plate[:2])
    assert serial not in shown
    assert plate not in shown


def test_mask_plate_hides_everything_of_a_very_short_value() -> None:
    assert mask_plate("苏F1") == "***"


# ---------------------------------------------------------------- times


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("2026-11-21T09:12:44", id="no-offset"),
        pytest.param("2026-11-21 09:12:44", id="no-offset-space-separator"),
        pytest.param("2026-11-21", id="date-only"),
    ],
)
def test_times_without_an_offset_are_rejected(raw: str) -> None:
    with pytest.raises(ValidationError) as caught:
        UTC_TIME.validate_python(raw)
    assert caught.value.errors()[0]["type"] in {"timezone_aware", "datetime_from_date_parsing"}


def test_a_time_in_china_standard_time_is_kept_as_the_same_instant_in_utc() -> None:
    value = UTC_TIME.validate_python("2026-11-20T14:15:32+08:00")
    assert value == datetime(2026, 11, 20, 6, 15, 32, tzinfo=UTC)
    assert value.utcoffset() == timedelta(0)


def test_a_time_in_z_is_utc() -> None:
    value = UTC_TIME.validate_python("2026-11-20T06:15:32Z")
    assert value == datetime(2026, 11, 20, 6, 15, 32, tzinfo=UTC)
    assert value.utcoffset() == timedelta(0)


def test_z_and_plus_eight_spellings_of_one_instant_are_equal_and_print_alike() -> None:
    z = UTC_TIME.validate_python("2026-11-20T06:15:32Z")
    cst = UTC_TIME.validate_python("2026-11-20T14:15:32+08:00")
    assert z == cst
    assert z.isoformat() == cst.isoformat() == "2026-11-20T06:15:32+00:00"


def test_an_aware_datetime_object_is_converted_to_utc() -> None:
    cst = timezone(timedelta(hours=8))
    value = UTC_TIME.validate_python(datetime(2026, 11, 20, 2, 41, 10, tzinfo=cst))
    assert value == datetime(2026, 11, 19, 18, 41, 10, tzinfo=UTC)
    assert value.utcoffset() == timedelta(0)


def test_a_naive_datetime_object_is_rejected() -> None:
    with pytest.raises(ValidationError):
        UTC_TIME.validate_python(datetime(2026, 11, 20, 2, 41, 10))


@pytest.mark.parametrize("raw", [0, 1_700_000_000, 1.7e9, True, "0.0", "1700000000", " 1.5e9 "])
def test_numbers_are_not_times_even_as_text(raw: object) -> None:
    """pydantic would read them as seconds since 1970; the contracts say ISO 8601 text."""
    with pytest.raises(ValidationError, match="not a number"):
        UTC_TIME.validate_python(raw)


def test_times_for_people_are_china_time_with_offset_to_the_second() -> None:
    from datetime import UTC, datetime

    from workorder_pipeline.schemas.times import for_people

    assert for_people(datetime(2026, 12, 4, 16, 0, 0, 123456, tzinfo=UTC)) == "2026-12-05 00:00:00+08:00"


def test_a_time_china_time_cannot_write_is_shown_with_its_own_offset_not_a_crash() -> None:
    # 9999-12-31 20:00 UTC is already year 10000 in China: shown as it is, never an error.
    last = datetime(9999, 12, 31, 20, 0, tzinfo=UTC)
    assert for_people(last) == "9999-12-31 20:00:00+00:00"
