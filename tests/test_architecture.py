"""The layers hold: a pure core, one network module, one disk-writing module, a thin CLI."""

from __future__ import annotations

import ast
from pathlib import Path

import mfkit

PKG = Path(mfkit.__file__).parent
NETWORK_LIBS = {"httpx", "socket", "http", "urllib3", "requests", "ssl"}
PATH_WRITES = {"write_bytes", "write_text", "mkdir", "unlink", "touch", "rename", "rmdir"}
OS_WRITES = {"replace", "rename", "unlink", "remove", "mkdir", "makedirs", "rmdir", "fdopen"}
TEMP_FILES = {"mkstemp", "NamedTemporaryFile", "TemporaryDirectory", "mkdtemp"}


def modules():
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG.parent).with_suffix("")
        yield ".".join(rel.parts), ast.parse(path.read_text(), str(path))


def imports(tree: ast.AST, modname: str) -> set[str]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = modname.split(".")[: -node.level]
                out.add(".".join(base + ([node.module] if node.module else [])))
            else:
                out.add(node.module or "")
    return out


def calls(tree: ast.AST) -> set[str]:
    """Called names: ``name`` for bare calls, ``owner.attr`` when the owner is a plain name."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Attribute):
                names.add(f".{f.attr}")
                if isinstance(f.value, ast.Name):
                    names.add(f"{f.value.id}.{f.attr}")
            elif isinstance(f, ast.Name):
                names.add(f.id)
    return names


def writes(tree: ast.AST) -> set[str]:
    found = calls(tree)
    return ({c for c in found if c.startswith(".") and c[1:] in PATH_WRITES}
            | {c for c in found if c.startswith("os.") and c[3:] in OS_WRITES}
            | {c for c in found if c.split(".")[-1] in TEMP_FILES})


def test_core_is_pure():
    for name, tree in modules():
        if not name.startswith("mfkit.core"):
            continue
        mods = imports(tree, name)
        inside = {m for m in mods if m.startswith("mfkit")}
        assert all(m.startswith("mfkit.core") or m == "mfkit.errors" for m in inside), (name, inside)
        assert not {m.split(".")[0] for m in mods} & (NETWORK_LIBS | {"os", "pathlib", "time", "subprocess"}), name
        # datetime may parse; it may not read the clock: "now" is passed in.
        assert not calls(tree) & {"open", "print", "input", ".now", ".utcnow", ".today"}, name


def test_only_remote_touches_the_network():
    for name, tree in modules():
        if name == "mfkit.remote":
            continue
        roots = {m.split(".")[0] for m in imports(tree, name)}
        assert not roots & NETWORK_LIBS, name


def test_only_capture_writes_to_disk():
    for name, tree in modules():
        if name == "mfkit.capture":
            continue
        assert not writes(tree), (name, writes(tree))
        for node in ast.walk(tree):  # open(..., "w"/"a"/"x")
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "open" and len(node.args) > 1:
                mode = node.args[1]
                assert not (isinstance(mode, ast.Constant) and set(str(mode.value)) & set("wax+")), name


def test_analysis_and_report_consume_core_models_only():
    banned = {"mfkit.remote", "mfkit.capture", "mfkit.inputs", "mfkit.fetch", "mfkit.cli"}
    for name, tree in modules():
        if name.startswith(("mfkit.analysis", "mfkit.report")):
            assert not imports(tree, name) & banned, name


def test_only_the_cli_prints_or_exits():
    for name, tree in modules():
        if name in ("mfkit.cli", "mfkit.__main__") or name.startswith("mfkit._cli"):
            continue
        # report.py renders with rich into a StringIO; bare print / typer / sys.exit are the CLI's.
        assert not calls(tree) & {"print", "typer.echo", "sys.exit", "typer.Exit", "exit"}, name

