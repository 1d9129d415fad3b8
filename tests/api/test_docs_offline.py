"""/docs works on an intranet without internet: every asset it loads comes from this server."""

from __future__ import annotations

import re

from tests.api.conftest import ApiWorld


def test_the_docs_page_loads_nothing_from_another_server(api: ApiWorld) -> None:
    page = api.client.get("/docs")
    assert page.status_code == 200
    sources = re.findall(r"""(?:src|href)=['"]([^'"]+)['"]""", page.text)
    script_urls = re.findall(r"""url: ['"]([^'"]+)['"]""", page.text)
    assert sources and script_urls
    for address in [*sources, *script_urls]:
        assert address.startswith("/"), f"/docs loads {address} from elsewhere"
        assert api.client.get(address).status_code == 200, address
