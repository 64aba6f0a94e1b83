"""``mfkit report``: forensic Markdown / HTML, self-contained and escaped; notebook HTML."""

from __future__ import annotations

import hashlib
import json
import re

import pytest
from typer.testing import CliRunner

import mfkit
from fixtures.signer import Signer, build_payload, ec_key, sign
from mfkit.cli import app
from mfkit.notebook import analysis_html
from tests.conftest import FIXTURES

SEED_HTTP = FIXTURES / "seed" / "harbor-k8s-nginx-1.9.http"
SEED_BODY = FIXTURES / "seed" / "harbor-k8s-nginx-1.9.manifest.json"
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.fixture()
def hostile(tmp_path):
    payload = build_payload("evil/<b>name</b>", "1|x`y", [("sha256:" + "1" * 64, "/bin/sh -c " + HOSTILE),
                                                         ("sha256:" + "2" * 64, HOSTILE)])
    f = tmp_path / "hostile.json"
    f.write_bytes(sign(payload, [Signer(ec_key(3))], "2018-09-03T09:53:49Z"))
    return f


def report(tmp_path, fmt, *paths):
    out = tmp_path / f"r.{fmt}"
    res = CliRunner().invoke(app, ["report", *map(str, paths), "--format", fmt, "-o", str(out)])
    return res, out


def test_html_report_on_the_seed(tmp_path):
    res, out = report(tmp_path, "html", SEED_HTTP)
    assert res.exit_code == 0, res.output
    page = out.read_text()
    body = SEED_BODY.read_bytes()
    assert "sha256:" + hashlib.sha256(body).hexdigest() in page  # sha256 of the saved bytes
    assert "sha256:ad6e97e5c2ad173f31428bca04d28930ae962ad4c283f63bb77c96db29c26357" in page  # spec §1.12
    assert "VERIFIED" in page and "no trust policy given" in page
    assert page.count("<svg") == 1 and "mfkit history --reverse" in page
    for v1 in (json.loads(h["v1Compatibility"])["id"] for h in json.loads(body)["history"]):
        assert v1[:12] in page
    assert "<script" not in page and not re.search(r"(src|href)=\"https?:", page)  # self-contained
    res2, out2 = report(tmp_path, "html", SEED_HTTP)  # same command again: byte-identical
    assert out2.read_text() == page


def test_md_report(tmp_path):
    res, out = report(tmp_path, "md", SEED_HTTP)
    assert res.exit_code == 0
    text = out.read_text()
    assert text.startswith("# mfkit forensic report") and "| # | source | kind |" in text
    assert "data:image/svg+xml;base64," in text and "### History (newest first)" in text


def test_hostile_text_is_escaped_everywhere(tmp_path, hostile):
    res, out = report(tmp_path, "html", hostile)
    assert res.exit_code == 0
    page = out.read_text()
    assert "<script" not in page and "<img" not in page and "<b>name" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    res, md = report(tmp_path, "md", hostile)
    text = md.read_text()
    assert "<script" not in text and "&lt;script&gt;" in text and "1|x`y" not in text
    [a] = mfkit.load(str(hostile))
    [h] = mfkit.history(str(hostile))
    assert h.rows[0].created_by == HOSTILE  # kept raw in the data, escaped only in markup
    for html in (analysis_html(a), h._repr_html_(), mfkit.corpus(str(hostile))._repr_html_()):
        assert "<script" not in html and "<img" not in html and "<b>name" not in html
    assert "&lt;script&gt;" in analysis_html(a) and "&lt;script&gt;" in h._repr_html_()


def test_schema2_report_and_unreadable(tmp_path, corpus):
    res, out = report(tmp_path, "html", corpus / "public" / "quay-complex.schema2.json", tmp_path / "missing")
    assert res.exit_code == 3 and out.exists()
    page = out.read_text()
    assert "history.config-missing" in page and "<svg" in page


def test_bad_format_is_usage_error(tmp_path):
    res, _ = report(tmp_path, "pdf", SEED_HTTP)
    assert res.exit_code == 2
