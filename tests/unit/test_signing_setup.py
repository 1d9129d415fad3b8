"""Where signatures come from and reach: record headers into InboundMessage, the API's key."""

from __future__ import annotations

import stat
from pathlib import Path
from types import SimpleNamespace

from workorder_pipeline.config.settings import Settings
from workorder_pipeline.services.sender_keys import new_signing_key, read_signing_key, write_signing_key
from workorder_pipeline.streams.app import _inbound_message
from workorder_pipeline.wo.pipeline import API_KEY_FILE, api_signing_key


def event(headers: object) -> SimpleNamespace:
    message = SimpleNamespace(
        topic="workorders.commands",
        partition=0,
        offset=7,
        key=b"k",
        value=b"{}",
        timestamp=1.5,
        headers=headers,
    )
    return SimpleNamespace(message=message)


def test_record_headers_reach_the_inbound_message_as_name_and_bytes_pairs() -> None:
    pairs = [("wo-key-id", b"squad-1"), ("wo-signature", b"c2ln")]
    expected = (("wo-key-id", b"squad-1"), ("wo-signature", b"c2ln"))
    assert _inbound_message(event(pairs)).headers == expected
    assert _inbound_message(event(dict(pairs))).headers == expected
    assert _inbound_message(event({b"wo-key-id": "squad-1"})).headers == (("wo-key-id", b"squad-1"),)
    assert _inbound_message(event(None)).headers == ()


def test_without_a_key_file_the_api_makes_its_own_key_once_readable_by_the_owner_only(tmp_path: Path) -> None:
    settings = Settings(api_tokens_file=tmp_path / "tokens.yaml", data_dir=tmp_path / "data")
    first = api_signing_key(settings)
    assert first is not None
    path = tmp_path / "data" / API_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = api_signing_key(settings)
    assert again is not None and again.key_id == first.key_id
    assert again.public("a", ("*",)) == first.public("a", ("*",))


def test_the_api_signs_with_the_configured_key_file_and_makes_none(tmp_path: Path) -> None:
    key_file = tmp_path / "api.key"
    write_signing_key(new_signing_key("api-configured"), key_file)
    settings = Settings(
        api_tokens_file=tmp_path / "tokens.yaml", data_dir=tmp_path / "data", api_signing_key_file=key_file
    )
    key = api_signing_key(settings)
    assert key is not None and key.key_id == read_signing_key(key_file).key_id == "api-configured"
    assert not (tmp_path / "data" / API_KEY_FILE).exists()


def test_without_the_api_there_is_no_api_key(tmp_path: Path) -> None:
    assert api_signing_key(Settings(api_tokens_file=None, data_dir=tmp_path / "data")) is None
    assert not (tmp_path / "data").exists()
