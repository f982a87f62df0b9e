"""check, login, logout and profiles: the connection, its profiles and the keychain."""

from __future__ import annotations

from typing import Any

import click

from ..errors import ExitCode
from ..terminal import printable
from .common import CONNECTION_ENV, PROFILE_ENV, connection_settings, echo, environ, epilog
from .options import DEFAULT_TIMEOUT, Connection, connection_options, profile_option


@click.command(
    epilog=epilog(
        (
            "bulk-contacts check",
            "bulk-contacts check --profile production",
            "bulk-contacts check --api-url http://127.0.0.1:8787   # a sandbox",
        ),
        CONNECTION_ENV,
    )
)
@connection_options()
def check(connection: Connection) -> ExitCode:
    """Can I work? Reach the API URL (DNS, TCP, TLS), get a token, read the dealer's site list:
    each step with its outcome and time, then the number of sites, the rate limit and the clock
    offset. Exit 0 when every step passes; else the failing step, its likely cause and fix."""
    from ..check import clock_note, run_check
    from ..client import ChektClient
    from ..profiles import active_name

    settings = connection_settings(connection)
    profile = active_name(connection.profile, environ())
    where = f"profile {profile}, " if profile else ""
    quiet = connection.quiet  # nothing on stdout; a failing step and its fix on stderr

    def say(text: str, style: str = "") -> None:
        if not quiet:
            echo(text, style)

    def failing(text: str, style: str = "") -> None:
        echo(text, style, err=quiet)

    say(f"Checking {settings.api_url} ({where}dealer {settings.dealer_id or 'not set'}):", "bold")
    # 10 s per step unless --timeout says otherwise (a slow link)
    timeout = 10.0 if connection.timeout == DEFAULT_TIMEOUT else connection.timeout
    client = ChektClient(settings, concurrency=1, timeout=timeout)
    with client:
        report = run_check(settings, client)
    for step in report.steps:
        mark, style = ("ok  ", "ok") if step.ok else ("FAIL", "error")
        show = say if step.ok else failing
        show(f"  {mark} {step.name:<10} {step.seconds * 1000:7.0f} ms  {step.detail}", style)
        if step.fix:
            show(f"       fix: {step.fix}", "warning")
    if not report.ok:
        failed = report.failed
        echo(f"check failed at: {failed.name if failed else '?'}", "error", err=True)
        return ExitCode.FAILED
    say(f"sites: {report.sites}")
    say(f"rate limit: {report.rate_limit or 'not advertised (no X-RateLimit-* headers)'}")
    say(clock_note(report.clock_offset))
    say("All checks passed.", "done")
    return ExitCode.OK


def chosen_profile(flag: str | None) -> Any:
    """The profile `login`/`logout` are about: --profile, else CHEKT_PROFILE."""
    from ..errors import ConfigError
    from ..profiles import active_name, find_profile

    name = active_name(flag, environ())
    if name is None:
        raise ConfigError(
            "which profile? give --profile NAME (or set CHEKT_PROFILE); `bulk-contacts "
            "profiles` lists them",
            setting="profile",
        )
    return find_profile(name)


@click.command(
    epilog=epilog(("bulk-contacts login", "bulk-contacts login --profile production"), PROFILE_ENV)
)
@profile_option("The profile whose secret to store (default: CHEKT_PROFILE).")
def login(profile: str | None) -> ExitCode:
    """Ask for the profile's client secret (or API key), unseen, and keep it in the operating
    system's keychain (Windows Credential Manager, macOS Keychain, Secret Service). Never in
    the settings file. Without a keychain (a headless server), set it in the environment."""
    from ..errors import ConfigError
    from ..profiles import (
        SECRET_VARIABLE,
        SECRET_WORDS,
        keychain_name,
        keychain_problem,
        store_secret,
    )

    chosen = chosen_profile(profile)
    if chosen.auth not in SECRET_VARIABLE:
        echo(
            f"profile {chosen.name} signs a JWT with its key file ({chosen.private_key_file}): "
            f"there is no secret to store"
        )
        return ExitCode.OK
    variable = SECRET_VARIABLE[chosen.auth]
    problem = keychain_problem()
    if problem:
        raise ConfigError(
            f"{problem}: nothing was stored; set {variable} in the environment (or in a .env "
            f"file in the working folder) instead",
            setting="keychain",
        )
    word = SECRET_WORDS[chosen.auth]
    secret = click.prompt(
        printable(f"{word} for profile {chosen.name}"), hide_input=True, default=""
    )
    if not secret.strip():
        raise ConfigError(f"no {word} given: nothing was stored")
    store_secret(chosen.name, secret.strip())
    echo(f"{word} of profile {chosen.name} stored in the keychain ({keychain_name()})")
    return ExitCode.OK


@click.command(
    epilog=epilog(
        ("bulk-contacts logout", "bulk-contacts logout --profile production"), PROFILE_ENV
    )
)
@profile_option("The profile whose secret to remove (default: CHEKT_PROFILE).")
def logout(profile: str | None) -> ExitCode:
    """Remove the profile's secret from the keychain."""
    from ..profiles import delete_secret

    chosen = chosen_profile(profile)
    if delete_secret(chosen.name):
        echo(f"the secret of profile {chosen.name} was removed from the keychain")
    else:
        echo(f"no secret of profile {chosen.name} was in the keychain")
    return ExitCode.OK


@click.group(
    invoke_without_command=True,
    epilog=epilog(
        (
            "bulk-contacts profiles",
            "bulk-contacts profiles add production --dealer 12345 --client-id abc",
            "bulk-contacts profiles remove production",
        ),
        PROFILE_ENV,
    ),
)
@click.pass_context
def profiles(ctx: click.Context) -> None:
    """List the connection profiles of the settings file (never a secret) and the active one;
    `profiles add` and `profiles remove` change them."""
    if ctx.invoked_subcommand is None:
        list_profiles()


def list_profiles() -> None:
    from ..profiles import (
        active_name,
        keychain_problem,
        load_profiles,
        secret_state,
        settings_path,
    )

    path = settings_path()
    found = load_profiles(path)
    env = environ()
    active = active_name(None, env)
    echo(f"settings file: {path}{'' if path.exists() else ' (not written yet)'}")
    if not found:
        echo("no profiles yet: bulk-contacts profiles add NAME --api-url URL --dealer ID ...")
    no_keychain = keychain_problem()
    for name, profile in sorted(found.items()):
        values = ", ".join(f"{k}={v}" for k, v in profile.values().items())
        secret = secret_state(name, profile, no_keychain)
        echo(f"{'*' if name == active else ' '} {name}: {values} ({secret})")
    if active:
        source = "CHEKT_PROFILE"
        missing = "" if active in found else " (no such profile!)"
        echo(f"active: {active} (from {source}){missing}; --profile NAME picks another")
    else:
        echo("active: none (CHEKT_* variables and defaults); --profile NAME or CHEKT_PROFILE")


@profiles.command("add")
@click.argument("name")
@click.option("--api-url", metavar="URL", help="API base URL.")
@click.option("--token-url", metavar="URL", help="OAuth token URL (default <api-url>/oauth/token).")
@click.option("--dealer", metavar="ID", help="Dealer id.")
@click.option("--client-id", metavar="ID", help="OAuth client id.")
@click.option(
    "--auth",
    type=click.Choice(["client_secret", "private_key_jwt", "api_key"]),
    help="How the tool proves who it is (default client_secret).",
)
@click.option(
    "--private-key-file",
    metavar="FILE",
    help="PEM private key, for --auth private_key_jwt (a path: the key stays in its file).",
)
def profiles_add(name: str, **given: str | None) -> ExitCode:
    """Write profile NAME (a new one, or the given settings of an existing one). Its secret:
    `bulk-contacts login --profile NAME`."""
    from ..profiles import add_profile

    path, profile, existing = add_profile(name, given)
    echo(f"profile {name} {'updated' if existing else 'added'} in {path}")
    if profile.auth != "private_key_jwt" and not existing:
        from ..profiles import keychain_problem

        variable = "CHEKT_API_KEY" if profile.auth == "api_key" else "CHEKT_CLIENT_SECRET"
        if problem := keychain_problem():  # `login` would only say so
            echo(f"its secret: {problem}: set {variable} (or a .env file) when you use it")
        else:
            echo(f"store its secret with: bulk-contacts login --profile {name}")
    return ExitCode.OK


@profiles.command("remove")
@click.argument("name")
def profiles_remove(name: str) -> ExitCode:
    """Remove profile NAME from the settings file, and its secret from the keychain."""
    from ..profiles import remove_profile

    path, removed = remove_profile(name)
    echo(f"profile {name} removed from {path}" + (" (and its secret)" if removed else ""))
    return ExitCode.OK
