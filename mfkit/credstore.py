"""Find registry credentials where users keep them (skopeo/podman order), without logging them.

Order (first hit wins), as containers-auth.json(5) and docker describe it:

1. ``--creds USER`` + ``--password-stdin`` (given by the caller);
2. ``$REGISTRY_AUTH_FILE`` if set, else ``$XDG_RUNTIME_DIR/containers/auth.json`` and
   ``$XDG_CONFIG_HOME/containers/auth.json`` (default ``~/.config``);
3. ``$DOCKER_CONFIG/config.json`` if ``DOCKER_CONFIG`` is set, else ``~/.docker/config.json``;
4. anonymous.

Inside one file: ``credHelpers[<registry>]``, then ``credsStore``, then the ``auths`` entry.
A helper is ``docker-credential-<name> get`` with the server URL on stdin, run with a time
limit; a helper that is missing, fails or says "not found" gives a warning (for failures)
and the search goes on.  This module reads files and runs helpers; it never writes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

from .core.credentials import (
    AuthFile,
    Credentials,
    CredentialsFormatError,
    entry_credentials,
    match_entry,
    parse_auth_file,
    parse_helper_output,
)
from .core.reference import DOCKER_HUB

__all__ = ["CredentialSearch", "auth_file_paths", "HELPER_TIMEOUT"]

HELPER_TIMEOUT = 10.0  # seconds for one docker-credential-* call
_MAX_FILE = 1 << 20


def _show(path: Path, home: Path | None) -> str:
    """``~/...`` for paths under the home folder (summaries stay short and portable)."""
    if home is not None:
        try:
            return "~/" + str(path.relative_to(home))
        except ValueError:
            pass
    return str(path)


def auth_file_paths(env: Mapping[str, str]) -> list[Path]:
    """The files to read, in order (see module docstring)."""
    home = Path(env["HOME"]) if env.get("HOME") else None
    paths: list[Path] = []
    if env.get("REGISTRY_AUTH_FILE"):
        paths.append(Path(env["REGISTRY_AUTH_FILE"]))
    else:
        if env.get("XDG_RUNTIME_DIR"):
            paths.append(Path(env["XDG_RUNTIME_DIR"]) / "containers" / "auth.json")
        xdg_config = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else (
            home / ".config" if home else None)
        if xdg_config is not None:
            paths.append(xdg_config / "containers" / "auth.json")
    if env.get("DOCKER_CONFIG"):
        paths.append(Path(env["DOCKER_CONFIG"]) / "config.json")
    elif home is not None:
        paths.append(home / ".docker" / "config.json")
    return paths


@dataclass
class CredentialSearch:
    """Look up credentials for registry domains; results are cached per domain.

    Args:
        env: the environment to read (``os.environ`` by default).
        warn: called with a one-line warning (never holds a secret).
        helper_timeout: seconds allowed for one helper call.
    """

    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    warn: Callable[[str], None] = lambda _msg: None
    helper_timeout: float = HELPER_TIMEOUT
    _files: list[tuple[Path, AuthFile]] | None = None
    _cache: dict[tuple[str, str | None], Credentials | None] = field(default_factory=dict)

    @property
    def home(self) -> Path | None:
        return Path(self.env["HOME"]) if self.env.get("HOME") else None

    def files(self) -> list[tuple[Path, AuthFile]]:
        """Every readable credentials file, parsed (unreadable or malformed ones warned about)."""
        if self._files is None:
            self._files = []
            for path in auth_file_paths(self.env):
                try:
                    if not path.is_file():
                        continue
                    if path.stat().st_size > _MAX_FILE:
                        self.warn(f"credentials file {_show(path, self.home)} is over 1 MiB; ignored")
                        continue
                    data = path.read_bytes()
                except OSError as exc:
                    self.warn(f"credentials file {_show(path, self.home)} unreadable ({exc.strerror}); ignored")
                    continue
                try:
                    self._files.append((path, parse_auth_file(data)))
                except CredentialsFormatError as exc:
                    self.warn(f"credentials file {_show(path, self.home)}: {exc}; ignored")
        return self._files

    def lookup(self, domain: str, repository: str | None = None) -> Credentials | None:
        """Credentials for ``domain`` (a reference domain such as ``docker.io`` or
        ``host:5000``), or None for anonymous access."""
        key = (domain, repository)
        if key not in self._cache:
            self._cache[key] = self._lookup(domain, repository)
        return self._cache[key]

    def _lookup(self, domain: str, repository: str | None) -> Credentials | None:
        for path, parsed in self.files():
            shown = _show(path, self.home)
            hkey = match_entry(parsed.cred_helpers, domain, repository)
            if hkey is not None:
                found = self._helper(parsed.cred_helpers[hkey], domain, f"{shown} (credHelpers)")
                if found is not None:
                    return found
            if parsed.creds_store:
                found = self._helper(parsed.creds_store, domain, f"{shown} (credsStore)")
                if found is not None:
                    return found
            akey = match_entry(parsed.auths, domain, repository)
            if akey is not None:
                try:
                    found = entry_credentials(parsed.auths[akey], f"{shown} (auths)")
                except CredentialsFormatError as exc:
                    self.warn(f"credentials file {shown}, entry {akey!r}: {exc}; ignored")
                    found = None
                if found is not None:
                    return found
        return None

    def _helper(self, name: str, domain: str, source: str) -> Credentials | None:
        program = f"docker-credential-{name}"
        if "/" in name or not name:
            self.warn(f"credential helper name {name!r} is not valid; skipped")
            return None
        exe = shutil.which(program, path=self.env.get("PATH"))
        if exe is None:
            self.warn(f"credential helper {program} not found on PATH; trying the next credential source")
            return None
        # docker's helpers are keyed by the server URL as `docker login` stored it
        server = "https://index.docker.io/v1/" if domain == DOCKER_HUB else domain
        try:
            proc = subprocess.run([exe, "get"], input=server.encode(), capture_output=True,
                                  timeout=self.helper_timeout, env=dict(self.env), check=False)
        except subprocess.TimeoutExpired:
            self.warn(f"credential helper {program} did not answer within {self.helper_timeout:g} s; skipped")
            return None
        except OSError as exc:
            self.warn(f"credential helper {program} could not run ({exc.strerror}); skipped")
            return None
        if proc.returncode != 0:
            text = proc.stdout.decode("utf-8", "replace").strip().lower()
            if "not found" not in text:  # "credentials not found in native keychain" is normal
                self.warn(f"credential helper {program} failed (exit {proc.returncode}); skipped")
            return None
        try:
            return parse_helper_output(proc.stdout, f"{source}: {program}")
        except CredentialsFormatError as exc:
            self.warn(f"credential helper {program}: {exc}; skipped")
            return None
