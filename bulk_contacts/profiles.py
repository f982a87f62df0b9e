"""Named connection profiles in the user's settings file, their secrets in the OS keychain, and
a `.env` file in the working folder: the layers under the command line's flags.

Precedence, highest first: a flag, then an environment variable (the process's, then the working
folder's `.env`, which never overrides a variable already set), then the active profile (its
settings, and its secret from the keychain), then the default.

The settings file is TOML in the user's config folder (`platformdirs`: on Linux
`$XDG_CONFIG_HOME/bulk-contacts/settings.toml`, on Windows `%LOCALAPPDATA%\\bulk-contacts\\...`, on
macOS `~/Library/Application Support/bulk-contacts/...`). It holds no secret: a client secret or
API key goes to the keychain (`keyring`: Windows Credential Manager, macOS Keychain, Secret
Service), under the service `bulk-contacts` and the profile's name. Where no keychain exists (a
headless server), secrets come from the environment only.
"""

from __future__ import annotations

import os
import re
import tempfile
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import platformdirs

from .errors import ConfigError

APP = "bulk-contacts"
KEYRING_SERVICE = "bulk-contacts"
AUTH_METHODS = ("client_secret", "private_key_jwt", "api_key")
PROFILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

# A profile's field, and the variable it stands in for when that variable is not set.
VARIABLES = {
    "api_url": "CHEKT_API_URL",
    "token_url": "CHEKT_TOKEN_URL",
    "dealer": "CHEKT_DEALER_ID",
    "client_id": "CHEKT_CLIENT_ID",
    "private_key_file": "CHEKT_PRIVATE_KEY_FILE",
}
# Where the keychain's secret goes, by auth method.
SECRET_VARIABLE = {"client_secret": "CHEKT_CLIENT_SECRET", "api_key": "CHEKT_API_KEY"}
SECRET_WORDS = {"client_secret": "client secret", "api_key": "API key"}


def settings_path() -> Path:
    """The settings file: `settings.toml` in the user's config folder (XDG_CONFIG_HOME moves it
    on Linux)."""
    return platformdirs.user_config_path(APP, appauthor=False) / "settings.toml"


@dataclass(frozen=True)
class Profile:
    """One named set of connection settings; never a secret."""

    name: str
    api_url: str | None = None
    token_url: str | None = None
    dealer: str | None = None
    client_id: str | None = None
    auth: str = "client_secret"
    private_key_file: str | None = None

    def values(self) -> dict[str, str]:
        """Its settings as the file keeps them (empty ones left out)."""
        return {
            key: value
            for key, value in asdict(self).items()
            if key != "name" and value not in (None, "")
        }

    def environ(self) -> dict[str, str]:
        """The CHEKT_* variables it stands in for."""
        return {
            variable: str(getattr(self, key))
            for key, variable in VARIABLES.items()
            if getattr(self, key) not in (None, "")
        }


def check_name(name: str) -> str:
    if not PROFILE_NAME.match(name):
        raise ConfigError(
            f"profile name {name!r}: use letters, digits, '-', '_' or '.' (up to 64), "
            f"starting with a letter or digit",
            setting="profile",
        )
    return name


def load_profiles(path: Path | None = None) -> dict[str, Profile]:
    """The settings file's profiles, by name; none when there is no file. A file that cannot
    be read is an error naming it."""
    path = path or settings_path()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"settings file {path}: cannot be read ({error})") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(
            f"settings file {path}: not valid TOML ({error}); fix or remove it"
        ) from None
    table = data.get("profiles", {})
    if not isinstance(table, dict):
        raise ConfigError(f"settings file {path}: [profiles] must be a table of profiles")
    known = {f.name for f in fields(Profile)} - {"name"}
    profiles = {}
    for name, values in table.items():
        if not isinstance(values, dict):
            raise ConfigError(f"settings file {path}: profile {name!r} must be a table")
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"settings file {path}: profile {name!r} has unknown setting(s) "
                f"{', '.join(unknown)} (known: {', '.join(sorted(known))}); secrets belong in "
                f"the keychain (bulk-contacts login)"
            )
        profile = Profile(name, **{k: str(v) for k, v in values.items()})
        if profile.auth not in AUTH_METHODS:
            raise ConfigError(
                f"settings file {path}: profile {name!r}: auth must be one of "
                f"{', '.join(AUTH_METHODS)}, got {profile.auth!r}"
            )
        profiles[name] = profile
    return profiles


def save_profiles(profiles: Mapping[str, Profile], path: Path | None = None) -> Path:
    """Write the settings file whole: to a temporary name beside it, then renamed into place."""
    import tomli_w

    path = path or settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "# bulk-contacts settings: `bulk-contacts profiles` manages it. No secrets here.\n"
    text += tomli_w.dumps({"profiles": {n: p.values() for n, p in sorted(profiles.items())}})
    handle, temporary = tempfile.mkstemp(prefix=".settings-", suffix=".toml", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def active_name(flag: str | None, env: Mapping[str, str]) -> str | None:
    """--profile, else CHEKT_PROFILE; None when neither names one."""
    return flag or env.get("CHEKT_PROFILE", "").strip() or None


def add_profile(
    name: str, given: Mapping[str, str | None], path: Path | None = None
) -> tuple[Path, Profile, bool]:
    """Write profile `name`: a new one, or the `given` settings of an existing one (its other
    settings kept), each checked as the settings check it. Where it was written, the profile,
    and whether it existed."""
    from .settings import _clean_url, _dealer

    check_name(name)
    values = {k: v.strip() for k, v in given.items() if v is not None and v.strip()}
    for key in ("api_url", "token_url"):
        if key in values:
            values[key] = _clean_url(values[key], key)
    if "dealer" in values:
        _dealer(values["dealer"], True)
    found = load_profiles(path)
    existing = found.get(name)
    profile = replace(existing, **values) if existing else Profile(name, **values)
    if profile.auth == "private_key_jwt" and not profile.private_key_file:
        raise ConfigError(
            f"profile {name}: auth private_key_jwt needs a private key file",
            setting="private_key_file",
        )
    return save_profiles({**found, name: profile}, path), profile, existing is not None


def secret_state(name: str, profile: Profile, no_keychain: str | None) -> str:
    """Where a profile's secret comes from, never the secret: for the lists of profiles (the
    `profiles` command and serve's Connect page). `no_keychain`: `keychain_problem()`'s answer,
    asked once for the list."""
    if profile.auth == "private_key_jwt":
        return "signs with a key file"
    if no_keychain:
        return "secret from the environment only (no keychain)"
    return "secret in the keychain" if read_secret(name) else "no secret stored"


def remove_profile(name: str, path: Path | None = None) -> tuple[Path, bool]:
    """Remove profile `name` from the settings file, and its secret from the keychain. Where it
    was removed from, and whether a secret was."""
    found = load_profiles(path)
    if name not in found:
        raise _no_profile(name, found, path, "nothing was removed")
    del found[name]
    written = save_profiles(found, path)
    try:
        return written, delete_secret(name)
    except ConfigError:  # no keychain: there was nothing in it
        return written, False


def find_profile(name: str, path: Path | None = None) -> Profile:
    profiles = load_profiles(path)
    if name not in profiles:
        raise _no_profile(
            name,
            profiles,
            path,
            f"add it with: bulk-contacts profiles add {name} --api-url URL --dealer ID "
            f"--client-id ID",
            setting="profile",
        )
    return profiles[name]


def _no_profile(
    name: str, profiles: dict[str, Profile], path: Path | None, then: str, setting: str = ""
) -> ConfigError:
    known = ", ".join(sorted(profiles)) or "none yet"
    where = path or settings_path()
    return ConfigError(
        f"no profile named {name!r} in {where} (profiles: {known}); {then}", setting=setting
    )


# .env


def dotenv_values(folder: Path | None = None) -> dict[str, str]:
    """The working folder's `.env` (python-dotenv's syntax), if there is one."""
    return read_dotenv(folder)[0]


def read_dotenv(folder: Path | None = None) -> tuple[dict[str, str], list[str]]:
    """The working folder's `.env`: its variables, and a line for each line that is not
    `NAME=value` (ignored). A file that cannot be read is an error naming it."""
    import io
    import logging

    from dotenv import dotenv_values as read
    from dotenv.parser import parse_stream

    path = (folder or Path.cwd()) / ".env"
    if not path.is_file():
        return {}, []
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as error:
        raise ConfigError(f"{path}: cannot be read ({error.strerror or error})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text; save it as UTF-8") from None
    problems = [
        f"{path} line {binding.original.line}: not NAME=value, ignored"
        for binding in parse_stream(io.StringIO(text))
        if binding.error
    ]
    quiet = logging.getLogger("dotenv.main")
    level, quiet.level = quiet.level, logging.ERROR  # its warnings are `problems`, said once
    try:
        values = read(stream=io.StringIO(text))
    finally:
        quiet.level = level
    return {key: value for key, value in values.items() if value is not None}, problems


def layered_environ(env: Mapping[str, str], folder: Path | None = None) -> dict[str, str]:
    """The environment with the working folder's `.env` beneath it: a variable already set
    wins."""
    return {**dotenv_values(folder), **env}


# the keychain


def keychain_name() -> str:
    """The keychain's name (its keyring backend's module: SecretService, Windows, macOS...)."""
    import keyring

    return type(keyring.get_keyring()).__module__.rsplit(".", 1)[-1]


def keychain_problem() -> str | None:
    """Why the keychain cannot be used here, or None when a backend exists."""
    import keyring
    from keyring.backends import fail

    backend = keyring.get_keyring()
    if isinstance(backend, fail.Keyring):
        return "no keychain on this machine (keyring found no backend, as on a headless server)"
    return None


def _keyring_error(action: str, error: Exception) -> ConfigError:
    return ConfigError(
        f"the keychain could not {action} ({type(error).__name__}: {error}); set the secret "
        f"in the environment instead",
        setting="profile",
    )


def store_secret(profile: str, secret: str) -> None:
    import keyring
    from keyring.errors import KeyringError

    problem = keychain_problem()
    if problem:
        raise ConfigError(f"{problem}: nothing was stored", setting="keychain")
    try:
        keyring.set_password(KEYRING_SERVICE, profile, secret)
    except KeyringError as error:
        raise _keyring_error("store the secret", error) from None


def read_secret(profile: str) -> str | None:
    """The profile's secret from the keychain; None when there is none or no keychain."""
    import keyring
    from keyring.errors import KeyringError

    if keychain_problem():
        return None
    try:
        return keyring.get_password(KEYRING_SERVICE, profile)
    except KeyringError:
        return None


def delete_secret(profile: str) -> bool:
    """Remove the profile's secret; False when there was none."""
    import keyring
    from keyring.errors import KeyringError, PasswordDeleteError

    problem = keychain_problem()
    if problem:
        raise ConfigError(f"{problem}: nothing to remove", setting="keychain")
    try:
        keyring.delete_password(KEYRING_SERVICE, profile)
    except PasswordDeleteError:
        return False
    except KeyringError as error:
        raise _keyring_error("remove the secret", error) from None
    return True


# the layers together


@dataclass(frozen=True)
class Layered:
    """The mapping settings are resolved from, and where its values came from."""

    environ: dict[str, str]
    profile: Profile | None
    secret_from_keychain: bool = False


def with_profile(
    env: Mapping[str, str], profile_flag: str | None, path: Path | None = None
) -> Layered:
    """`env` (already with `.env` beneath it) over the active profile's settings and, when the
    environment sets no secret, the profile's secret from the keychain."""
    name = active_name(profile_flag, env)
    if name is None:
        return Layered(dict(env), None)
    profile = find_profile(name, path)
    merged = {**profile.environ(), **env}
    secret_variable = SECRET_VARIABLE.get(profile.auth)
    has_secret = any(
        env.get(v) for v in ("CHEKT_CLIENT_SECRET", "CHEKT_API_KEY", "CHEKT_PRIVATE_KEY_FILE")
    )
    # The keychain's secret is the profile client's: only used for that client id.
    same_client = merged.get("CHEKT_CLIENT_ID") == (
        profile.client_id or merged.get("CHEKT_CLIENT_ID")
    )
    if secret_variable and not has_secret and same_client:
        secret = read_secret(name)
        if secret:
            merged[secret_variable] = secret
            return Layered(merged, profile, secret_from_keychain=True)
    return Layered(merged, profile)


def missing_secret_hint(layered: Layered) -> str:
    """What to do when the active profile has no secret."""
    profile = layered.profile
    if profile is None or profile.auth not in SECRET_VARIABLE:
        return ""
    variable = SECRET_VARIABLE[profile.auth]
    problem = keychain_problem()
    if problem:
        return f"{problem}: set {variable} in the environment or in a .env file"
    return f"run: bulk-contacts login --profile {profile.name} (or set {variable})"
