"""Connection profiles in the user's settings file, their secrets in the OS keychain (keyring,
through a real in-memory backend set with `keyring.set_keyring`, as keyring documents; and its
no-backend one, as on a headless server), the working folder's .env, and the precedence: flag,
environment, profile, default."""

from __future__ import annotations

import os
import sys
import tomllib
from pathlib import Path

import keyring
import keyring.backend
import pytest
from click.testing import CliRunner
from keyring.errors import PasswordDeleteError

from bulk_contacts.cli import main
from bulk_contacts.profiles import (
    Layered,
    load_profiles,
    read_dotenv,
    settings_path,
    with_profile,
)
from bulk_contacts.settings import resolve_settings

from . import warm

SECRET = "sandbox-secret"


class MemoryKeyring(keyring.backend.KeyringBackend):
    """A keychain in this process's memory: keyring's backend interface, nothing of ours."""

    priority = 1  # type: ignore[assignment]  # a classproperty in the base

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.items.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.items[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.items.pop((service, username), None) is None:
            raise PasswordDeleteError(username)


@pytest.fixture
def keychain() -> MemoryKeyring:
    backend = MemoryKeyring()
    keyring.set_keyring(backend)  # conftest's own_settings restores the no-backend one
    return backend


def run(*args: str, env: dict[str, str] | None = None, input: str | None = None):
    return CliRunner().invoke(main, list(args), env=env or {}, input=input)


def add_sandbox_profile(sandbox, name: str = "rehearsal") -> None:
    result = run(
        "profiles", "add", name, "--api-url", sandbox.url, "--dealer", "12345",
        "--client-id", "sandbox-client",
    )  # fmt: skip
    assert result.exit_code == 0, result.output


def test_profiles_live_in_the_config_folder_xdg_config_home_moves(tmp_path, sandbox) -> None:
    add_sandbox_profile(sandbox)
    path = tmp_path / "config-home" / "bulk-contacts" / "settings.toml"
    assert settings_path() == path and path.is_file()
    saved = tomllib.loads(path.read_text())["profiles"]["rehearsal"]
    assert saved == {
        "api_url": sandbox.url,
        "dealer": "12345",
        "client_id": "sandbox-client",
        "auth": "client_secret",
    }
    listed = run("profiles", env={"CHEKT_PROFILE": "rehearsal"})
    assert listed.exit_code == 0
    assert f"* rehearsal: api_url={sandbox.url}" in listed.output
    assert "active: rehearsal (from CHEKT_PROFILE)" in listed.output
    assert "environment only (no keychain)" in listed.output
    assert "active: none" in run("profiles").output


def test_add_updates_remove_removes_and_bad_input_is_one_line(sandbox) -> None:
    add_sandbox_profile(sandbox)
    updated = run("profiles", "add", "rehearsal", "--dealer", "777")
    assert updated.exit_code == 0 and "profile rehearsal updated" in updated.output
    assert load_profiles()["rehearsal"].dealer == "777"
    assert load_profiles()["rehearsal"].api_url == sandbox.url  # kept
    bad_url = run("profiles", "add", "x", "--api-url", "api.chekt.com")
    assert bad_url.exit_code == 2 and "must be an http(s) URL" in bad_url.output
    bad_dealer = run("profiles", "add", "x", "--dealer", "acme")
    assert bad_dealer.exit_code == 2 and "must be a number" in bad_dealer.output
    bad_name = run("profiles", "add", "../evil")
    assert bad_name.exit_code == 2 and "profile name" in bad_name.output
    assert "Traceback" not in bad_url.output + bad_dealer.output + bad_name.output
    removed = run("profiles", "remove", "rehearsal")
    assert removed.exit_code == 0 and load_profiles() == {}
    missing = run("profiles", "remove", "rehearsal")
    assert missing.exit_code == 2 and "no profile named 'rehearsal'" in missing.output
    assert "nothing was removed" in missing.output and "add it with" not in missing.output
    assert "(--profile)" not in missing.output


def test_a_secret_in_the_settings_file_is_refused_naming_the_keychain(sandbox) -> None:
    add_sandbox_profile(sandbox)
    path = settings_path()
    path.write_text(path.read_text() + 'client_secret = "oops"\n')
    result = run("check", "--profile", "rehearsal")
    assert result.exit_code == 2
    assert "unknown setting(s) client_secret" in result.output and "keychain" in result.output
    assert "oops" not in result.output
    path.write_text("[profiles\n")
    broken = run("profiles")
    assert broken.exit_code == 2 and f"settings file {path}: not valid TOML" in broken.output


def test_login_keeps_the_secret_in_the_keychain_never_in_a_file_or_output(
    sandbox, keychain, tmp_path
) -> None:
    add_sandbox_profile(sandbox)
    login = run("login", "--profile", "rehearsal", input=SECRET + "\n")
    assert login.exit_code == 0, login.output
    assert keychain.items == {("bulk-contacts", "rehearsal"): SECRET}
    assert SECRET not in login.output  # hidden input: not echoed
    checked = run("check", "--profile", "rehearsal")
    assert checked.exit_code == 0, checked.output
    assert "All checks passed" in checked.output and SECRET not in checked.output
    listed = run("profiles", env={"CHEKT_PROFILE": "rehearsal"})
    assert "secret in the keychain" in listed.output and SECRET not in listed.output
    for path in (tmp_path / "config-home").rglob("*"):
        if path.is_file():
            assert SECRET not in path.read_text(errors="replace"), path
    logout = run("logout", env={"CHEKT_PROFILE": "rehearsal"})
    assert logout.exit_code == 0 and "removed from the keychain" in logout.output
    assert keychain.items == {}
    again = run("check", "--profile", "rehearsal")
    assert again.exit_code == 2
    assert "no secret; run: bulk-contacts login --profile rehearsal" in again.output
    assert "no secret of profile rehearsal" in run("logout", "--profile", "rehearsal").output


def test_without_a_keychain_login_says_so_and_the_environment_serves(sandbox) -> None:
    add_sandbox_profile(sandbox)
    login = run("login", "--profile", "rehearsal", input=SECRET + "\n")
    assert login.exit_code == 2
    assert "no keychain on this machine" in login.output
    assert "set CHEKT_CLIENT_SECRET in the environment" in login.output
    without = run("check", "--profile", "rehearsal")
    assert without.exit_code == 2 and "set CHEKT_CLIENT_SECRET" in without.output
    fallback = run("check", "--profile", "rehearsal", env={"CHEKT_CLIENT_SECRET": SECRET})
    assert fallback.exit_code == 0, fallback.output


def test_login_needs_a_profile_that_exists() -> None:
    assert "which profile? give --profile NAME" in run("login").output
    result = run("login", "--profile", "nope")
    assert result.exit_code == 2 and "no profile named 'nope'" in result.output


def test_precedence_flag_then_environment_then_profile_then_default(sandbox, keychain) -> None:
    add_sandbox_profile(sandbox)
    keychain.set_password("bulk-contacts", "rehearsal", SECRET)
    profile_only = run("check", "--profile", "rehearsal")
    assert profile_only.exit_code == 0 and "dealer 12345" in profile_only.output
    assert f"Checking {sandbox.url} (profile rehearsal, dealer 12345)" in profile_only.output
    env_wins = run("check", "--profile", "rehearsal", env={"CHEKT_DEALER_ID": "999"})
    assert env_wins.exit_code == 1 and "dealer 999 is not reachable" in env_wins.output
    flag_wins = run(
        "check", "--profile", "rehearsal", "--dealer", "12345", env={"CHEKT_DEALER_ID": "999"}
    )
    assert flag_wins.exit_code == 0, flag_wins.output
    # the environment's secret over the keychain's
    wrong = run("check", "--profile", "rehearsal", env={"CHEKT_CLIENT_SECRET": "wrong"})
    assert wrong.exit_code == 1 and "refused the credentials" in wrong.output
    # the library's own layering: the profile under the environment, the default under both
    layered = with_profile({}, "rehearsal")
    assert layered.environ["CHEKT_API_URL"] == sandbox.url and layered.secret_from_keychain
    assert resolve_settings(env=layered.environ).api_url == sandbox.url
    nothing = with_profile({"CHEKT_CLIENT_ID": "a", "CHEKT_CLIENT_SECRET": "b"}, None)
    assert nothing == Layered({"CHEKT_CLIENT_ID": "a", "CHEKT_CLIENT_SECRET": "b"}, None)
    assert resolve_settings(env=nothing.environ, require_dealer=False).api_url == (
        "https://api.chekt.com"
    )


def test_the_keychain_secret_is_not_sent_for_another_client_id(sandbox, keychain) -> None:
    add_sandbox_profile(sandbox)
    keychain.set_password("bulk-contacts", "rehearsal", SECRET)
    layered = with_profile({"CHEKT_CLIENT_ID": "someone-else"}, "rehearsal")
    assert "CHEKT_CLIENT_SECRET" not in layered.environ


def test_dot_env_is_read_and_never_overrides_a_set_variable(sandbox, tmp_path) -> None:
    (tmp_path / ".env").write_text(
        f"CHEKT_API_URL={sandbox.url}\nCHEKT_CLIENT_ID=sandbox-client\n"
        f"CHEKT_CLIENT_SECRET={SECRET}\nCHEKT_DEALER_ID=999\n"
    )
    from_file = run("check")
    assert from_file.exit_code == 1 and "dealer 999 is not reachable" in from_file.output
    overridden = run("check", env={"CHEKT_DEALER_ID": "12345"})
    assert overridden.exit_code == 0, overridden.output


def test_the_console_script_loads_dot_env_into_its_environment(sandbox, tmp_path) -> None:
    (tmp_path / ".env").write_text(
        f"CHEKT_API_URL={sandbox.url}\nCHEKT_CLIENT_ID=sandbox-client\n"
        f"CHEKT_CLIENT_SECRET={SECRET}\nCHEKT_DEALER_ID=999\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHEKT_")}
    env["CHEKT_DEALER_ID"] = "12345"
    done = warm.run(
        [sys.executable, "-m", "bulk_contacts", "check"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "dealer 12345: " in done.stdout


def test_a_profile_for_a_signed_jwt_keeps_a_key_path_and_has_nothing_to_log_in(
    tmp_path,
) -> None:
    key = tmp_path / "key.pem"
    result = run("profiles", "add", "jwt", "--auth", "private_key_jwt")
    assert result.exit_code == 2 and "--private-key-file" in result.output
    added = run(
        "profiles", "add", "jwt", "--auth", "private_key_jwt", "--private-key-file", str(key),
        "--client-id", "c",
    )  # fmt: skip
    assert added.exit_code == 0
    login = run("login", "--profile", "jwt")
    assert login.exit_code == 0 and "no secret to store" in login.output
    assert with_profile({}, "jwt").environ["CHEKT_PRIVATE_KEY_FILE"] == str(key)


def test_settings_path_is_per_user(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "elsewhere"))
    assert settings_path() == Path(tmp_path / "elsewhere" / "bulk-contacts" / "settings.toml")


def test_a_dot_env_that_cannot_be_read_is_one_line_naming_it(tmp_path) -> None:
    (tmp_path / ".env").write_bytes(b"CHEKT_DEALER_ID=\xff\xfe\n")
    result = run("check")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"{tmp_path / '.env'}: not UTF-8 text; save it as UTF-8" in result.output
    (tmp_path / ".env").write_text("just words\nCHEKT_DEALER_ID=5\n")
    values, problems = read_dotenv(tmp_path)
    assert values == {"CHEKT_DEALER_ID": "5"}
    assert problems == [f"{tmp_path / '.env'} line 1: not NAME=value, ignored"]


def test_a_profile_without_a_client_id_asks_for_one_not_for_a_login(sandbox) -> None:
    result = run("profiles", "add", "bare", "--api-url", sandbox.url)
    assert result.exit_code == 0
    checked = run("check", "--profile", "bare")
    assert checked.exit_code == 2 and "no credentials: set CHEKT_CLIENT_ID" in checked.output


def test_without_a_keychain_add_does_not_advise_login_and_help_names_the_right_folder() -> None:
    """QA (README walkthrough): on a machine with no keychain (the tests' default backend),
    `profiles add` advised `bulk-contacts login`, which then fails there; and `profiles --help`
    said the settings file is under %APPDATA% on Windows, where it is under %LOCALAPPDATA%."""
    result = CliRunner().invoke(
        main, ["profiles", "add", "nokeychain", "--client-id", "abc", "--dealer", "1"]
    )
    assert result.exit_code == 0, result.output
    assert "login --profile" not in result.output
    assert "CHEKT_CLIENT_SECRET" in result.output and "no keychain" in result.output
    helped = CliRunner().invoke(main, ["profiles", "--help"]).output
    assert "%LOCALAPPDATA%" in helped and "%APPDATA%)" not in helped.replace("%LOCALAPPDATA%", "")
