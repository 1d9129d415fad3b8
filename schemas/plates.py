"""Chinese vehicle plates: normalized before any use or key is built.

Publishers send plates with spaces, lower case, full-width letters and digits and
separators (``苏Ｆ·１２３４５``). ``normalize_plate`` folds those away; ``Plate`` also
validates the shape:

- ordinary plate: province character, issuing-office letter, 5 characters (7 in all);
- new-energy plate: province, letter, 6 characters (8 in all);
- trailer/coach-school/police style: province, letter, 4 characters and one of
  挂 学 警 港 澳 (7 in all).

Letters I and O never appear in the serial part (they read as 1 and 0), so a plate
containing them is rejected rather than guessed at.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator

PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
_SERIAL = "A-HJ-NP-Z0-9"
PLATE_PATTERN = re.compile(rf"^[{PROVINCES}][A-Z](?:[{_SERIAL}]{{5,6}}|[{_SERIAL}]{{4}}[挂学警港澳])$")
# Separators publishers put between the office letter and the serial.
_SEPARATORS = re.compile(r"[\s·•．.\-_]")


def normalize_plate(raw: str) -> str:
    """Fold full-width characters, case, spaces and separators: ``苏ｆ 12345`` -> ``苏F12345``."""
    return _SEPARATORS.sub("", unicodedata.normalize("NFKC", raw)).upper()


def _validate_plate(plate: str) -> str:
    if not PLATE_PATTERN.match(plate):
        raise ValueError(
            "not a valid plate: expected a province character, a letter and 5 characters "
            "(6 for new-energy plates)"
        )
    return plate


def _normalize_if_text(value: object) -> object:
    return normalize_plate(value) if isinstance(value, str) else value


#: A normalized, validated plate.
Plate = Annotated[str, BeforeValidator(_normalize_if_text), AfterValidator(_validate_plate)]


def mask_plate(plate: str) -> str:
    """A plate as logs may show it: region kept, serial hidden (``苏F***45``)."""
    return plate[:2] + "***" + plate[-2:] if len(plate) > 4 else "***"
