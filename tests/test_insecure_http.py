"""Plain http:// is refused for every host but this machine's own: the token request carries the
client secret. `--allow-insecure-http` (or CHEKT_ALLOW_INSECURE_HTTP=1) lets it through, with a
warning on every run. No test here sends anything beyond 127.0.0.1: `chekt.invalid` never
resolves."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from bulk_contacts.cli import main
from bulk_contacts.errors import ConfigError
from bulk_contacts.settings import is_loopback, resolve_settings

CREDENTIALS = {"CHEKT_CLIENT_ID": "id", "CHEKT_CLIENT_SECRET": "Sup3r-Secret-Value"}

REMOTE = [
    "http://chekt.invalid",
    "http://CHEKT.invalid:8080/base",
    "http://127.0.0.1.chekt.invalid",
    "http://localhost.chekt.invalid",
]
LOCAL = [
    "http://127.0.0.1:8787",
    "http://127.9.8.7",
    "http://localhost:1234",
    "http://LOCALHOST.",
    "http://[::1]:8787",
    "http://[::ffff:127.0.0.1]:8787",
]


@pytest.mark.parametrize("url", REMOTE)
def test_plain_http_to_another_host_is_refused_naming_https(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_settings(api_url=url, env=CREDENTIALS, require_dealer=False)
    message = str(caught.value)
    assert "https://" in message and "CHEKT_ALLOW_INSECURE_HTTP=1" in message
    assert "API URL" in message and caught.value.setting == "allow_insecure_http"
    assert "Sup3r-Secret-Value" not in message


def test_a_url_whose_user_info_looks_like_this_machine_is_refused() -> None:
    """`http://127.0.0.1@chekt.invalid` goes to chekt.invalid: refused, as any URL holding a
    user name is (which the plain-http rule refused too, before it)."""
    with pytest.raises(ConfigError, match="without a user name, password") as caught:
        resolve_settings(
            api_url="http://127.0.0.1@chekt.invalid", env=CREDENTIALS, require_dealer=False
        )
    assert caught.value.setting == "api_url"


@pytest.mark.parametrize("url", REMOTE)
def test_a_plain_http_token_url_is_refused_too(url: str) -> None:
    with pytest.raises(ConfigError, match="token URL"):
        resolve_settings(
            api_url="https://chekt.invalid",
            token_url=url + "/oauth/token",
            env=CREDENTIALS,
            require_dealer=False,
        )
    with pytest.raises(ConfigError, match="CHEKT_TOKEN_URL"):
        resolve_settings(
            api_url="https://chekt.invalid",
            env={**CREDENTIALS, "CHEKT_TOKEN_URL": url},
            require_dealer=False,
        )


@pytest.mark.parametrize("url", LOCAL)
def test_plain_http_to_this_machine_is_allowed_without_a_warning(url: str) -> None:
    settings = resolve_settings(api_url=url, env=CREDENTIALS, require_dealer=False)
    assert settings.cleartext_urls == []


def test_https_anywhere_is_allowed() -> None:
    settings = resolve_settings(api_url="https://chekt.invalid", env=CREDENTIALS, dealer=1)
    assert settings.cleartext_urls == []


@pytest.mark.parametrize("host", ["127.0.0.1", "127.255.255.254", "::1", "localhost"])
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize(
    "host", ["chekt.invalid", "128.0.0.1", "::2", "0.0.0.0", "127.1", "localhost.chekt.invalid", ""]
)
def test_hosts_that_are_not_loopback(host: str) -> None:
    assert not is_loopback(host)


def test_allowed_with_the_option_or_the_variable_and_listed_for_the_warning() -> None:
    by_option = resolve_settings(
        api_url="http://chekt.invalid",
        env=CREDENTIALS,
        require_dealer=False,
        allow_insecure_http=True,
    )
    assert by_option.cleartext_urls == ["http://chekt.invalid", "http://chekt.invalid/oauth/token"]
    by_variable = resolve_settings(
        api_url="http://chekt.invalid",
        env={**CREDENTIALS, "CHEKT_ALLOW_INSECURE_HTTP": "1"},
        require_dealer=False,
    )
    assert by_variable.cleartext_urls == by_option.cleartext_urls


@pytest.mark.parametrize("value", ["0", "false", "no", ""])
def test_the_variable_set_to_no_still_refuses(value: str) -> None:
    with pytest.raises(ConfigError, match="https://"):
        resolve_settings(
            api_url="http://chekt.invalid",
            env={**CREDENTIALS, "CHEKT_ALLOW_INSECURE_HTTP": value},
            require_dealer=False,
        )


def test_the_variable_with_a_value_that_is_not_yes_or_no_is_an_error() -> None:
    with pytest.raises(ConfigError, match="CHEKT_ALLOW_INSECURE_HTTP"):
        resolve_settings(
            api_url="http://chekt.invalid",
            env={**CREDENTIALS, "CHEKT_ALLOW_INSECURE_HTTP": "maybe"},
            require_dealer=False,
        )


# the command line


def roster(tmp_path):
    path = tmp_path / "roster.csv"
    path.write_text("Account #,External ID,First Name,Last Name\nA1,c1,Ann,Lee\n")
    return path


@pytest.mark.parametrize("command", ["plan", "apply", "export"])
def test_every_command_refuses_before_any_request(tmp_path, command: str) -> None:
    args = {
        "plan": ["plan", str(roster(tmp_path))],
        "apply": ["apply", str(roster(tmp_path)), "--yes"],
        "export": ["export", "-o", str(tmp_path / "out.xlsx")],
    }[command]
    result = CliRunner().invoke(
        main,
        [*args, "--api-url", "http://chekt.invalid"],
        env={**CREDENTIALS, "CHEKT_DEALER_ID": "12345", "CHEKT_ALLOW_INSECURE_HTTP": None},
    )
    assert result.exit_code == 2, result.output
    assert "https://" in result.output and "Traceback" not in result.output
    assert "--allow-insecure-http" in result.output
    assert "Sup3r-Secret-Value" not in result.output


def test_the_option_warns_on_every_run(tmp_path, sandbox) -> None:
    """The token comes from a sandbox on 127.0.0.1 (no warning for it); the API URL is plain
    http:// to chekt.invalid, which is never reached: the roster is missing. The warning comes
    first, on stderr, even with --quiet, every time."""
    env = {
        "CHEKT_CLIENT_ID": "sandbox-client",
        "CHEKT_CLIENT_SECRET": "sandbox-secret",
        "CHEKT_DEALER_ID": "12345",
        "CHEKT_TOKEN_URL": f"{sandbox.url}/oauth/token",
    }
    for _ in range(2):
        result = CliRunner().invoke(
            main,
            [
                "plan",
                str(tmp_path / "missing.csv"),
                "--api-url",
                "http://chekt.invalid",
                "--allow-insecure-http",
                "-q",
            ],
            env=env,
        )
        assert result.exit_code == 2
        warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
        assert warnings == [
            "warning: http://chekt.invalid is plain http:// to another machine "
            "(--allow-insecure-http): the secret, tokens and contacts cross the network in clear"
        ]
        assert "no such file" in result.stderr
        assert "sandbox-secret" not in result.output


def test_settings_with_no_https_url_load_no_certificate_authorities() -> None:
    """Loading a CA bundle costs about 20 ms of CPU per client (the suite makes well over a
    thousand, against sandboxes on 127.0.0.1): settings whose API and token URLs are both plain
    http make no TLS connection, and get a context that still verifies but trusts no authority
    (a TLS connection made with it by mistake would be refused). One https URL: the bundle."""
    import ssl

    import certifi

    bundle = certifi.where()
    plain = resolve_settings(
        api_url="http://127.0.0.1:8787", env=CREDENTIALS, require_dealer=False, ca_bundle=bundle
    )
    context = plain.ssl_context()
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.cert_store_stats()["x509_ca"] == 0
    for api_url, token_url in [
        ("https://chekt.invalid", None),
        ("http://127.0.0.1:8787", "https://chekt.invalid/oauth/token"),
    ]:
        settings = resolve_settings(
            api_url=api_url,
            token_url=token_url,
            env=CREDENTIALS,
            require_dealer=False,
            ca_bundle=bundle,
        )
        trusted = settings.ssl_context()
        assert trusted.verify_mode == ssl.CERT_REQUIRED and trusted.check_hostname
        assert trusted.cert_store_stats()["x509_ca"] > 0, (api_url, token_url)


def test_an_unchanged_ca_bundle_is_read_once_and_a_changed_one_again(tmp_path, monkeypatch) -> None:
    """Every command resolves its settings, which checks the CA bundle (SSL_CERT_FILE is often
    set): a process resolving many times (`serve`, the tests) reads an unchanged file once, and
    a file changed since (replaced, rewritten) again, whose errors are the same."""
    import shutil
    import ssl

    import certifi

    bundle = tmp_path / "ca.pem"
    shutil.copy(certifi.where(), bundle)
    loads: list[object] = []
    load = ssl.create_default_context

    def counted(*args, **kwargs):
        loads.append(kwargs.get("cafile"))
        return load(*args, **kwargs)

    monkeypatch.setattr(ssl, "create_default_context", counted)
    for _ in range(3):
        resolve_settings(env={**CREDENTIALS, "SSL_CERT_FILE": str(bundle)}, require_dealer=False)
    assert loads == [str(bundle)]
    bundle.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match="not a PEM file of certificates"):
        resolve_settings(env={**CREDENTIALS, "SSL_CERT_FILE": str(bundle)}, require_dealer=False)
