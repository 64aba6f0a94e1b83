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


# --- defects found in a new-user trial ---

MD_HOSTILE = "[click](javascript:alert(1)) ![px](http://127.0.0.1:9/track.png) **bold**"
TERM_HOSTILE = "\x1b[31mRED\x1b]0;title\x07\x1b[2J\r\x08FAKE VERIFIED\x00"


@pytest.fixture()
def injected(tmp_path):
    payload = build_payload("evil/name", "v1", [("sha256:" + "1" * 64, MD_HOSTILE),
                                                ("sha256:" + "2" * 64, TERM_HOSTILE),
                                                ("sha256:" + "3" * 64, "a\n   trusted: yes \u202eevil")])
    f = tmp_path / "injected.json"
    f.write_bytes(sign(payload, [Signer(ec_key(4))], "2018-09-03T09:53:49Z"))
    return f


def test_markdown_injection_is_inert(tmp_path, injected):
    res, md = report(tmp_path, "md", injected)
    assert res.exit_code == 0, res.output
    text = md.read_text()
    assert "](javascript" not in text and "![px]" not in text and "**bold**" not in text
    assert "http://127" not in text  # no bare URL for an autolink either
    assert "\\[click\\]\\(javascript:alert\\(1\\)\\)" in text and "\\!\\[px\\]" in text and "\\*\\*bold\\*\\*" in text
    # the only image is mfkit's own inline chain figure
    assert re.findall(r"!\[[^\]]*\]\(([a-z]+):", text) == ["data"]
    assert not any(c in text for c in ("\x1b", "\r", "\x08", "\x07", "\x00", "\u202e"))
    assert "\\\\x1b\\[31mRED" in text and "a\\\\x0a   trusted: yes" in text
    assert not any(line.lstrip().startswith("trusted:") for line in text.splitlines())


def test_html_report_has_no_raw_controls(tmp_path, injected):
    res, page = report(tmp_path, "html", injected)
    assert res.exit_code == 0
    text = page.read_text()
    assert not any(c in text for c in ("\x1b", "\r", "\x08", "\x07", "\x00", "\u202e"))
    assert "\\x1b[31mRED" in text and "<img" not in text


def test_report_shows_name_and_tag(tmp_path, injected):
    for fmt in ("md", "html"):
        res, out = report(tmp_path, fmt, injected)
        text = out.read_text()
        assert "evil/name:v1" in text
    assert "- name: evil/name\n- tag: v1\n" in (tmp_path / "r.md").read_text()


def test_report_missing_output_folder_is_usage_error(tmp_path):
    target = tmp_path / "no" / "such" / "r.html"
    res = CliRunner().invoke(app, ["report", str(SEED_HTTP), "-o", str(target)])
    assert res.exit_code == 2 and str(tmp_path / "no" / "such") in res.output and "does not exist" in res.output
    assert not (tmp_path / "no").exists()
    res = CliRunner().invoke(app, ["report", str(SEED_HTTP), "-o", str(tmp_path)])
    assert res.exit_code == 2 and "is a folder" in res.output


@pytest.mark.skipif(not __import__("os").path.exists("/proc/version"), reason="needs /proc")
def test_report_unwritable_target_message(tmp_path):
    res = CliRunner().invoke(app, ["report", str(SEED_HTTP), "-o", "/proc/version"])
    assert res.exit_code == 3 and "Traceback" not in res.output
    assert "/proc does not accept new files" in res.output or "Permission denied" in res.output


def test_report_plurals(tmp_path):
    res, _ = report(tmp_path, "md", SEED_BODY)
    assert "(1 document)" in res.output and "1 documents" not in res.output
