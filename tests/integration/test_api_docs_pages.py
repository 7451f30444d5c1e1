"""``/docs`` and ``/redoc`` load only this package's pinned copies of Swagger UI and ReDoc, under a strict CSP."""

from __future__ import annotations

import hashlib
import re

from tests.integration.conftest import Api
from unified.ui.pages.base import STATIC

PINNED = re.findall(r"^([0-9a-f]{64})  (\S+)$", (STATIC / "vendor" / "README.md").read_text(), re.M)
DIGESTS = {name: digest for digest, name in PINNED}


def test_every_vendored_file_is_the_one_its_readme_pins() -> None:
    files = sorted(path.name for path in (STATIC / "vendor").iterdir() if path.suffix in (".js", ".css"))
    assert sorted(DIGESTS) == files, "each vendored file is listed with its SHA-256, and only those"
    for name, digest in DIGESTS.items():
        assert hashlib.sha256((STATIC / "vendor" / name).read_bytes()).hexdigest() == digest, name


def test_the_docs_pages_load_nothing_from_elsewhere_and_no_inline_script(api: Api) -> None:
    for path, needed in (("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")):
        page = api.client.get(path)
        assert page.status_code == 200
        policy = page.headers["Content-Security-Policy"]
        assert "script-src 'self';" in policy and "default-src 'self'" in policy and "unsafe-eval" not in policy
        loaded = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert loaded and all(url.startswith("/") and not url.startswith("//") for url in loaded), loaded
        assert f"/ui/static/vendor/{needed}" in loaded
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page.text), "an inline script the CSP would refuse"
        for url in loaded:
            assert api.client.get(url).status_code == 200, url
        assert "/openapi.json" in page.text


def test_fastapi_s_cdn_pages_and_oauth_redirect_are_gone(api: Api) -> None:
    assert "cdn.jsdelivr.net" not in api.client.get("/docs").text
    assert api.client.get("/docs/oauth2-redirect").status_code == 404


def test_the_document_declares_how_a_key_is_sent_on_the_routes_that_need_one(api: Api) -> None:
    doc = api.client.get("/openapi.json").json()
    schemes = doc["components"]["securitySchemes"]
    assert schemes["APIKeyHeader"] == {**schemes["APIKeyHeader"], "type": "apiKey", "in": "header", "name": "X-API-Key"}
    assert schemes["HTTPBearer"]["scheme"] == "bearer"
    assert doc["paths"]["/workflows"]["get"]["security"] == [{"APIKeyHeader": []}, {"HTTPBearer": []}]
    assert "security" not in doc["paths"]["/health"]["get"]
