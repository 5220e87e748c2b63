"""The config file of sources and targets: parsed into specs, and every bad file one clear line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from allowlist_sync.config import DEFAULT_HOST_URL, RunSettings, load_run_settings
from allowlist_sync.config.file import (
    TOP_KEYS,
    FleetConfig,
    TargetSpec,
    read_config,
    target_settings,
)
from allowlist_sync.config.file_sources import SOURCE_KEYS
from allowlist_sync.config.file_targets import TARGET_KEYS
from allowlist_sync.errors import ConfigError, ExitCode
from allowlist_sync.okta.query import DEFAULT_OKTA_URL
from allowlist_sync.sources.specs import AzureSource, OktaSource, StaticSource

ROOT = Path(__file__).parents[2]
TOKEN = "dbtc_fileconfig_test_token_0123456789"

GOOD = """\
concurrency = 2

[sources.entra]
type = "azure-service-tags"
cloud = "AzureGovernment"
tags = ["AzureActiveDirectory", "AzureFrontDoor.Backend"]

[sources.okta]
type = "okta-ip-ranges"
cells = ["us_cell_1", "us_cell_2"]

[sources.office]
type = "static"
cidrs = ["8.8.8.0/24", "2001:4860::/32"]

[[targets]]
name = "prod-us"
account_id = 12345
host_url = "https://ab123.us1.dbt.com/api/"
token_file = "secrets/prod-us-token"
rule_name = "allowlist-sync: SCIM"
sources = ["entra", "okta"]
mode = "sync"

[[targets]]
name = "sandbox"
account_id = 678
token_env = "SANDBOX_DBT_TOKEN"
rule_name = "allowlist-sync: SCIM"
sources = ["office"]
mode = "add-only"
rule_description = "Managed by allowlist-sync"
extra_cidrs = ["8.8.4.0/24"]
exclude_cidrs = ["8.8.8.8/32"]
ip_families = ["IPv4"]
aggregate = false
min_prefixes = 1
max_delete_fraction = 0.5
"""

TARGET = """\
[sources.office]
type = "static"
cidrs = ["8.8.8.0/24"]

[[targets]]
name = "prod-us"
account_id = 12345
token_env = "PROD_US_DBT_TOKEN"
rule_name = "allowlist-sync: SCIM"
sources = ["office"]
"""


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No target variable of the environment leaks into a test."""
    for name in list(os.environ):
        if name.startswith("DBT_CLOUD_") or name.endswith("_DBT_TOKEN"):
            monkeypatch.delenv(name)
    for name in ("ALLOWLIST_SYNC_AZURE_DETAILS_URL", "ALLOWLIST_SYNC_AZURE_DOWNLOAD_BASE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def run() -> RunSettings:
    """The process settings, from the (clean) environment."""
    return RunSettings()


def write(tmp_path: Path, text: str, name: str = "fleet.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def refused(path: Path, run: RunSettings, *parts: str) -> str:
    """The message of the ConfigError that reading `path` raises; it names `parts`, one line."""
    with pytest.raises(ConfigError) as info:
        read_config(path, run)
    message = str(info.value)
    assert info.value.exit_code == ExitCode.CONFIG
    assert "\n" not in message and "\r" not in message
    assert message.startswith(f"{path}: ")
    for part in parts:
        assert part in message, message
    return message


def with_target(extra: str, sources: str = "") -> str:
    """TARGET with `extra` lines added to the target table (and `sources` tables before)."""
    return sources + TARGET + extra


# --- a good file ---------------------------------------------------------------------------


def test_a_good_file_becomes_the_expected_specs(tmp_path: Path, run: RunSettings) -> None:
    """All three source types and two targets parse into the specs the run uses."""
    path = write(tmp_path, GOOD)
    config = read_config(path, run)
    assert isinstance(config, FleetConfig)
    assert config.path == path
    assert config.concurrency == 2
    assert list(config.sources) == ["entra", "okta", "office"]
    entra = config.sources["entra"]
    assert isinstance(entra, AzureSource)
    assert entra.file is None
    assert entra.query.tags == ("AzureActiveDirectory", "AzureFrontDoor.Backend")
    assert entra.query.cloud == "AzureGovernment"
    assert entra.query.source_url is None
    assert entra.query.probe_days == run.probe_days
    assert entra.query.cache_dir == run.cache_dir
    assert entra.query.max_age_days == run.max_feed_age_days
    assert entra.query.timeout == run.http_timeout
    assert entra.query.retry == run.retry_policy()
    okta = config.sources["okta"]
    assert isinstance(okta, OktaSource)
    assert okta.query.cells == ("us_cell_1", "us_cell_2")
    assert okta.query.url == DEFAULT_OKTA_URL
    assert okta.query.file is None
    assert okta.query.cache_dir == run.cache_dir
    assert config.sources["office"] == StaticSource(
        name="office", cidrs=("8.8.8.0/24", "2001:4860::/32")
    )
    prod, sandbox = config.targets
    assert prod == TargetSpec(
        name="prod-us",
        account_id=12345,
        host_url="https://ab123.us1.dbt.com",
        token_file=tmp_path / "secrets" / "prod-us-token",
        token_env=None,
        rule_name="allowlist-sync: SCIM",
        sources=("entra", "okta"),
    )
    assert sandbox == TargetSpec(
        name="sandbox",
        account_id=678,
        host_url=DEFAULT_HOST_URL,
        token_file=None,
        token_env="SANDBOX_DBT_TOKEN",
        rule_name="allowlist-sync: SCIM",
        sources=("office",),
        mode="add-only",
        rule_description="Managed by allowlist-sync",
        extra_cidrs=("8.8.4.0/24",),
        exclude_cidrs=("8.8.8.8/32",),
        ip_families=("ipv4",),
        aggregate=False,
        min_prefixes=1,
        max_delete_fraction=0.5,
    )


def test_the_defaults_of_a_minimal_file(tmp_path: Path, run: RunSettings) -> None:
    """An Azure source with no keys but its type is Entra ID in the public cloud, found weekly."""
    text = TARGET.replace('type = "static"\ncidrs = ["8.8.8.0/24"]', 'type = "azure-service-tags"')
    config = read_config(write(tmp_path, text), run)
    assert config.concurrency == 4
    source = config.sources["office"]
    assert isinstance(source, AzureSource)
    assert source.query.tags == ("AzureActiveDirectory",)
    assert source.query.cloud == "Public"
    (target,) = config.targets
    assert target.mode == "sync" and target.ip_families == ("ipv4", "ipv6")
    assert target.aggregate is True and target.min_prefixes == 10
    assert target.max_delete_fraction == 0.3 and target.rule_description is None


def test_the_example_file_is_accepted(run: RunSettings) -> None:
    """examples/fleet.toml, the documented example, is a file read_config accepts."""
    config = read_config(ROOT / "examples" / "fleet.toml", run)
    assert len(config.targets) >= 2
    assert {s.type for s in config.sources.values()} == {
        "azure-service-tags",
        "okta-ip-ranges",
        "static",
    }


@pytest.mark.parametrize(
    "key", sorted({*TOP_KEYS, *TARGET_KEYS, *(k for keys in SOURCE_KEYS.values() for k in keys)})
)
def test_docs_name_every_key(key: str) -> None:
    """docs/config.md, the file's reference, has a row for every key the code accepts."""
    assert f"| `{key}` |" in (ROOT / "docs" / "config.md").read_text()


def test_relative_paths_are_resolved_against_the_config_folder(
    tmp_path: Path, run: RunSettings
) -> None:
    """A relative `file` or `token_file` means beside the config file, not the working folder."""
    folder = tmp_path / "conf"
    folder.mkdir()
    text = TARGET.replace('token_env = "PROD_US_DBT_TOKEN"', 'token_file = "tok/prod"') + (
        '[sources.entra]\ntype = "azure-service-tags"\nfile = "feeds/tags.json"\n'
        '[sources.okta]\ntype = "okta-ip-ranges"\ncells = ["us_cell_1"]\nfile = "okta.json"\n'
        '[sources.abs]\ntype = "okta-ip-ranges"\ncells = ["us_cell_1"]\nfile = "/srv/okta.json"\n'
    )
    config = read_config(write(folder, text), run)
    entra, okta, absolute = (config.sources[n] for n in ("entra", "okta", "abs"))
    assert isinstance(entra, AzureSource) and isinstance(okta, OktaSource)
    assert isinstance(absolute, OktaSource)
    assert entra.file == str(folder / "feeds" / "tags.json")
    assert okta.query.file == str(folder / "okta.json")
    assert absolute.query.file == "/srv/okta.json"
    assert config.targets[0].token_file == folder / "tok" / "prod"


def test_source_urls_are_kept_and_their_queries_redacted(tmp_path: Path, run: RunSettings) -> None:
    """A source URL reaches the query, and its query string is registered for redaction."""
    from allowlist_sync.logs import redact

    text = TARGET + (
        '[sources.entra]\ntype = "azure-service-tags"\n'
        'url = "https://feeds.example.com/tags.json?sig=abcdef123456"\n'
        'details_url = "https://example.com/details/{id}"\n'
        'download_base = "http://127.0.0.1:8000/dl"\n'
        '[sources.okta]\ntype = "okta-ip-ranges"\ncells = ["us_cell_1"]\n'
        'url = "https://mirror.example.com/ip_ranges.json"\n'
    )
    config = read_config(write(tmp_path, text), run)
    entra, okta = config.sources["entra"], config.sources["okta"]
    assert isinstance(entra, AzureSource) and isinstance(okta, OktaSource)
    assert entra.query.source_url == "https://feeds.example.com/tags.json?sig=abcdef123456"
    assert entra.query.details_url == "https://example.com/details/{id}"
    assert entra.query.download_base == "http://127.0.0.1:8000/dl"
    assert okta.query.url == "https://mirror.example.com/ip_ranges.json"
    assert "abcdef123456" not in redact("fetching sig=abcdef123456")


def test_an_unused_source_is_a_warning(tmp_path: Path, run: RunSettings) -> None:
    """A source no target uses is logged as config_source_unused, and the file is accepted."""
    text = TARGET + '[sources.spare]\ntype = "static"\ncidrs = ["8.8.4.0/24"]\n'
    with capture_logs() as events:
        config = read_config(write(tmp_path, text), run)
    assert "spare" in config.sources
    unused = [e for e in events if e["event"] == "config_source_unused"]
    assert [e["source"] for e in unused] == ["spare"]
    assert unused[0]["log_level"] == "warning"


def test_account_id_may_be_a_digit_string(tmp_path: Path, run: RunSettings) -> None:
    """`account_id = "12345"` is accepted, as DBT_CLOUD_ACCOUNT_ID is text in the environment."""
    text = TARGET.replace("account_id = 12345", 'account_id = "12345"')
    assert read_config(write(tmp_path, text), run).targets[0].account_id == 12345


# --- the file itself ------------------------------------------------------------------------


def test_a_missing_file_names_the_reason(tmp_path: Path, run: RunSettings) -> None:
    """A file that cannot be read is refused with the system's reason."""
    refused(tmp_path / "absent.toml", run, "cannot read", "No such file or directory")


def test_a_folder_is_not_a_config_file(tmp_path: Path, run: RunSettings) -> None:
    """A folder given as the config file is refused with the system's reason."""
    refused(tmp_path, run, "cannot read")


def test_an_oversized_file_is_refused(tmp_path: Path, run: RunSettings) -> None:
    """A file over 1 MiB is refused before it is parsed."""
    path = write(tmp_path, TARGET + "#" * (1024 * 1024) + "\n")
    refused(path, run, "over 1048576 bytes")


def test_a_file_that_is_not_utf8_is_refused(tmp_path: Path, run: RunSettings) -> None:
    """Bytes that are not UTF-8 are refused with their position."""
    path = tmp_path / "fleet.toml"
    path.write_bytes(TARGET.encode() + b"# caf\xe9\n")
    refused(path, run, "not UTF-8")


def test_a_byte_order_mark_is_tolerated(tmp_path: Path, run: RunSettings) -> None:
    """A leading BOM (as some Windows editors write) does not break the file."""
    path = tmp_path / "fleet.toml"
    path.write_bytes(b"\xef\xbb\xbf" + TARGET.encode())
    assert read_config(path, run).targets[0].name == "prod-us"


def test_a_toml_syntax_error_keeps_line_and_column(tmp_path: Path, run: RunSettings) -> None:
    """tomllib's message, with its line and column, is the error."""
    path = write(tmp_path, TARGET + "mode = \n")
    refused(path, run, "not valid TOML", "line 11")


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ('[sources.office]\ntype = "static"\ncidrs = ["8.8.8.0/24"]\n', ["no [[targets]]"]),
        (TARGET.replace("[[targets]]", "[targets]"), ["targets", "array of tables"]),
        ('targets = ["prod"]\n[sources.a]\ntype = "static"\ncidrs = ["8.8.8.0/24"]\n',
         ["targets", "array of tables"]),
        ("targets = []\n", ["no [[targets]]"]),
        (TARGET.split("[[targets]]")[1].join(["[[targets]]", ""]), ["no [sources."]),
        ('sources = "entra"\n[[targets]]' + TARGET.split("[[targets]]")[1], ["sources", "table"]),
        ("sources = 1\n" + "[[targets]]" + TARGET.split("[[targets]]")[1], ["sources", "table"]),
    ],
    ids=["no-targets", "targets-table", "targets-strings", "targets-empty", "no-sources",
         "sources-string", "sources-int"],
)  # fmt: skip
def test_a_file_without_its_parts_is_refused(
    tmp_path: Path, run: RunSettings, text: str, parts: list[str]
) -> None:
    """A file with no targets, targets that are not tables, or no sources is refused."""
    refused(write(tmp_path, text), run, *parts)


@pytest.mark.parametrize("value", ["0", "33", "true", "2.0", '"4"'])
def test_concurrency_is_an_integer_from_1_to_32(
    tmp_path: Path, run: RunSettings, value: str
) -> None:
    """`concurrency` outside 1..32, or not an integer, is refused naming the key."""
    refused(write(tmp_path, f"concurrency = {value}\n" + TARGET), run, "top level: concurrency")


# --- unknown keys ---------------------------------------------------------------------------


def test_an_unknown_top_level_key_suggests_the_right_one(tmp_path: Path, run: RunSettings) -> None:
    """A misspelt top-level key is refused with a "did you mean"."""
    message = refused(write(tmp_path, "concurency = 2\n" + TARGET), run, "top level: concurency")
    assert "did you mean concurrency?" in message


def test_an_unknown_target_key_suggests_the_right_one(tmp_path: Path, run: RunSettings) -> None:
    """A misspelt target key is refused naming the target and suggesting the key."""
    message = refused(
        write(tmp_path, with_target("rule_nmae = 'x'\n")),
        run,
        '[[targets]] #1 "prod-us": rule_nmae',
    )
    assert "did you mean rule_name?" in message


def test_an_unknown_key_far_from_any_lists_the_valid_ones(tmp_path: Path, run: RunSettings) -> None:
    """With no close match, the message lists the keys the table accepts."""
    message = refused(write(tmp_path, with_target("colour = 'blue'\n")), run, "colour")
    assert "valid keys:" in message and "account_id" in message


def test_a_key_of_another_source_type_says_so(tmp_path: Path, run: RunSettings) -> None:
    """`cells` on an Azure source is refused as a key of okta-ip-ranges sources."""
    text = TARGET + '[sources.entra]\ntype = "azure-service-tags"\ncells = ["us_cell_1"]\n'
    message = refused(write(tmp_path, text), run, "[sources.entra]: cells")
    assert "okta-ip-ranges" in message


@pytest.mark.parametrize(
    ("source", "key"),
    [
        ('type = "azure-service-tags"\ntag = ["AzureActiveDirectory"]', "tag"),
        ('type = "okta-ip-ranges"\ncells = ["us_cell_1"]\ncell = "x"', "cell"),
        ('type = "static"\ncidrs = ["8.8.8.0/24"]\ncidr = "8.8.4.0/24"', "cidr"),
    ],
)
def test_an_unknown_source_key_suggests_the_right_one(
    tmp_path: Path, run: RunSettings, source: str, key: str
) -> None:
    """A misspelt key of each source type is refused with a "did you mean"."""
    text = TARGET + f"[sources.extra]\n{source}\n"
    message = refused(write(tmp_path, text), run, f"[sources.extra]: {key}", "did you mean")
    assert key + "s" in message


# --- tokens in the file ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "key", ["token", "dbt_token", "service_token", "api_token", "api_key", "password", "secret"]
)
def test_a_token_key_in_a_target_is_refused_without_echo(
    tmp_path: Path, run: RunSettings, key: str
) -> None:
    """A secret-looking key in a target is refused as "not a secret store", value not shown."""
    value = "s3cr3t-value-never-shown"
    message = refused(
        write(tmp_path, with_target(f'{key} = "{value}"\n')),
        run,
        f'[[targets]] #1 "prod-us": {key}',
        "a config file is not a secret store: use token_file or token_env",
    )
    assert value not in message


def test_a_token_key_anywhere_is_refused(tmp_path: Path, run: RunSettings) -> None:
    """A secret-looking key at the top level or in a source is refused too."""
    refused(write(tmp_path, 'password = "hunter22"\n' + TARGET), run, "top level: password")
    text = TARGET.replace('type = "static"', 'type = "static"\napi_key = "k-123456"')
    refused(write(tmp_path, text), run, "[sources.office]: api_key", "not a secret store")


@pytest.mark.parametrize(
    "where",
    ["rule_description = '{t}'\n", "extra_cidrs = ['{t}']\n", "colour = '{t}'\n"],
)
def test_a_token_value_anywhere_is_refused_without_echo(
    tmp_path: Path, run: RunSettings, where: str
) -> None:
    """A string that looks like a dbt token is refused wherever it is, and never echoed."""
    message = refused(
        write(tmp_path, with_target(where.format(t=TOKEN))),
        run,
        '[[targets]] #1 "prod-us"',
        "not a secret store",
    )
    assert TOKEN not in message
    assert "dbtc_" not in message


def test_a_token_value_in_a_source_is_refused(tmp_path: Path, run: RunSettings) -> None:
    """A token pasted as a source URL's query is refused without echo."""
    text = TARGET + (
        f'[sources.entra]\ntype = "azure-service-tags"\nurl = "https://x.example.com/?t={TOKEN}"\n'
    )
    message = refused(write(tmp_path, text), run, "[sources.entra]: url", "not a secret store")
    assert TOKEN not in message


def test_a_pasted_token_as_token_env_is_refused_without_echo(
    tmp_path: Path, run: RunSettings
) -> None:
    """token_env holding something that is not a variable name is refused, value not shown."""
    pasted = "Zq8x-91kd.PL0p"
    text = TARGET.replace('"PROD_US_DBT_TOKEN"', f'"{pasted}"')
    message = refused(write(tmp_path, text), run, "token_env", "NAME of an environment variable")
    assert pasted not in message


@pytest.mark.parametrize("name", ["ALLOWLIST_SYNC_TOKEN", "DBT_CLOUD_TOKEN"])
def test_token_env_may_not_name_a_setting(tmp_path: Path, run: RunSettings, name: str) -> None:
    """token_env naming an ALLOWLIST_SYNC_* or target variable is refused (they mean else)."""
    text = TARGET.replace('"PROD_US_DBT_TOKEN"', f'"{name}"')
    refused(write(tmp_path, text), run, "token_env", name)


def test_both_or_neither_token_key_is_refused(tmp_path: Path, run: RunSettings) -> None:
    """A target needs exactly one of token_file and token_env."""
    both = with_target('token_file = "/run/secrets/t"\n')
    refused(write(tmp_path, both), run, "token_file", "token_env", "not both")
    neither = TARGET.replace('token_env = "PROD_US_DBT_TOKEN"\n', "")
    refused(write(tmp_path, neither), run, "token_file or token_env")


# --- sources --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "parts"),
    [
        ('cidrs = ["8.8.8.0/24"]', ["[sources.extra]: type", "required"]),
        ('type = "okta"\ncells = ["us_cell_1"]', ["type", "did you mean okta-ip-ranges?"]),
        ('type = 3', ["type", "okta-ip-ranges"]),
        ('type = "azure-service-tags"\ncloud = "public"', ["cloud", "did you mean Public?"]),
        ('type = "azure-service-tags"\ntags = []', ["tags", "at least one"]),
        ('type = "azure-service-tags"\ntags = ["A", "A"]', ["tags", "twice"]),
        ('type = "azure-service-tags"\ntags = "AzureActiveDirectory"', ["tags", "list"]),
        ('type = "azure-service-tags"\ntags = [" "]', ["tags", "blank"]),
        ('type = "okta-ip-ranges"', ["cells", "required"]),
        ('type = "okta-ip-ranges"\ncells = []', ["cells", "at least one"]),
        ('type = "okta-ip-ranges"\ncells = ["us_cell_1", 2]', ["cells", "string"]),
        ('type = "okta-ip-ranges"\ncells = ["a"]\nfile = "x"\nurl = "https://x.example.com"',
         ["file", "url", "not both"]),
        ('type = "azure-service-tags"\nurl = "http://feeds.example.com/x.json"',
         ["url", "must use https"]),
        ('type = "azure-service-tags"\nurl = "https://u:p4ss@feeds.example.com/x.json"',
         ["url", "user-info"]),
        ('type = "azure-service-tags"\ndetails_url = "ftp://x.example.com"',
         ["details_url", "not an http(s) URL"]),
        ('type = "azure-service-tags"\nfile = ""', ["file", "blank"]),
        ('type = "static"', ["cidrs", "required"]),
        ('type = "static"\ncidrs = []', ["cidrs", "at least one"]),
        ('type = "static"\ncidrs = ["nope"]', ["cidrs", "'nope' is not an IP network"]),
        ('type = "static"\ncidrs = [1]', ["cidrs", "string"]),
    ],
)  # fmt: skip
def test_a_bad_source_is_refused_naming_its_key(
    tmp_path: Path, run: RunSettings, source: str, parts: list[str]
) -> None:
    """Each bad source value is refused naming the source table and the key."""
    text = TARGET.replace('sources = ["office"]', 'sources = ["office", "extra"]')
    text += f"[sources.extra]\n{source}\n"
    refused(write(tmp_path, text), run, "[sources.extra]", *parts)


@pytest.mark.parametrize(
    ("cidr", "problem"),
    [
        ("10.0.0.0/8", "is not globally routable unicast"),
        ("0.0.0.0/0", "is not globally routable unicast"),
        ("::/0", "is an IPv6 form that embeds IPv4 addresses"),
        ("2001:db8::/32", "is not globally routable unicast"),
        ("8.0.0.0/8", "is broader than /16"),
        ("2001:4860::/24", "is broader than /32"),
        ("192.0.2.0/24", "is not globally routable unicast"),
    ],
)
def test_a_static_cidr_out_of_scope_is_refused(
    tmp_path: Path, run: RunSettings, cidr: str, problem: str
) -> None:
    """A static CIDR outside the feed scope is refused naming the CIDR and the problem."""
    text = TARGET.replace('cidrs = ["8.8.8.0/24"]', f'cidrs = ["8.8.8.0/24", "{cidr}"]')
    refused(write(tmp_path, text), run, "[sources.office]: cidrs", cidr, problem)


def test_the_scope_follows_the_run_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A /8 passes when the run's minimum IPv4 prefix length allows it."""
    monkeypatch.setenv("ALLOWLIST_SYNC_MIN_PREFIX_LENGTH_IPV4", "8")
    text = TARGET.replace('"8.8.8.0/24"', '"8.0.0.0/8"')
    source = read_config(write(tmp_path, text), RunSettings()).sources["office"]
    assert source == StaticSource(name="office", cidrs=("8.0.0.0/8",))


@pytest.mark.parametrize("name", ["-x", "has space", "a/b", "ü"])
def test_a_bad_source_name_is_refused(tmp_path: Path, run: RunSettings, name: str) -> None:
    """A source name must start with a letter or digit and hold only letters, digits, _ . -."""
    text = TARGET + f'[sources."{name}"]\ntype = "static"\ncidrs = ["8.8.8.0/24"]\n'
    refused(write(tmp_path, text), run, "[sources]", "source name")


def test_a_source_that_is_not_a_table_is_refused(tmp_path: Path, run: RunSettings) -> None:
    """`sources.x = 1` is refused: each source is a table."""
    refused(write(tmp_path, "sources.x = 1\n" + TARGET), run, "[sources.x]", "table")


def test_stdin_is_refused_for_okta(tmp_path: Path, run: RunSettings) -> None:
    """Only an Azure source may read standard input (`file = "-"`); it is kept as is."""
    text = TARGET + '[sources.entra]\ntype = "azure-service-tags"\nfile = "-"\n'
    entra = read_config(write(tmp_path, text), run).sources["entra"]
    assert isinstance(entra, AzureSource) and entra.file == "-"
    text = TARGET + '[sources.okta]\ntype = "okta-ip-ranges"\ncells = ["a"]\nfile = "-"\n'
    refused(write(tmp_path, text), run, "[sources.okta]: file", "standard input")


# --- targets --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "parts"),
    [
        ("account_id = 12.0", ["account_id", "must be a plain positive integer such as 12345"]),
        ("account_id = true", ["account_id", "must be a plain positive integer"]),
        ('account_id = "12a"', ["account_id", "must be a plain positive integer"]),
        ("account_id = 0", ["account_id", "greater than 0"]),
        ('account_id = "9223372036854775808"', ["account_id", "less than"]),
        ('host_url = "http://ab123.us1.dbt.com"', ["host_url", "must use https"]),
        ('host_url = "https://ab123.us1.dbt.com/x"', ["host_url", "bare host URL"]),
        ('mode = "upsert"', ["mode", "'sync' or 'add-only'"]),
        ("mode = 1", ["mode", "string"]),
        ('rule_name = ""', ["rule_name", "blank"]),
        ('rule_name = "a\\nb"', ["rule_name", "control characters"]),
        ('rule_description = "  "', ["rule_description", "blank"]),
        ('ip_families = ["ipv5"]', ["ip_families", "unknown address family"]),
        ('ip_families = "ipv4"', ["ip_families", "list"]),
        ("ip_families = []", ["ip_families", "at least"]),
        ('aggregate = "yes"', ["aggregate", "true or false"]),
        ("aggregate = 1", ["aggregate", "true or false"]),
        ("min_prefixes = 0", ["min_prefixes", "greater than or equal to 1"]),
        ("min_prefixes = 2.0", ["min_prefixes", "integer"]),
        ("min_prefixes = true", ["min_prefixes", "integer"]),
        ("max_delete_fraction = 1.5", ["max_delete_fraction", "less than or equal to 1"]),
        ("max_delete_fraction = nan", ["max_delete_fraction", "finite"]),
        ('max_delete_fraction = "0.3"', ["max_delete_fraction", "number"]),
        ('extra_cidrs = ["10.0.0.0/8"]', ["extra_cidrs", "10.0.0.0/8 is not globally routable"]),
        ('extra_cidrs = ["nope"]', ["extra_cidrs", "'nope' is not an IP network"]),
        ('exclude_cidrs = "8.8.8.8"', ["exclude_cidrs", "list"]),
        ("sources = []", ["sources", "at least one"]),
        ('sources = ["ofice"]', ["sources", "no source 'ofice'", "did you mean office?"]),
        ('sources = ["office", "office"]', ["sources", "twice"]),
        ('sources = "office"', ["sources", "list"]),
        ('token_file = ""', ["token_file", "blank"]),
        ("token_env = 5", ["token_env", "string"]),
        ('name = "-prod"', ["name", "letters, digits"]),
        ('name = "' + "a" * 64 + '"', ["name", "at most 63"]),
        ("name = 7", ["name", "string"]),
    ],
)
def test_a_bad_target_value_is_refused_naming_its_key(
    tmp_path: Path, run: RunSettings, line: str, parts: list[str]
) -> None:
    """Each bad target value is refused naming the target table and the key, as the env would."""
    key = line.split(" = ")[0]
    lines = [ln for ln in TARGET.splitlines() if not ln.startswith(f"{key} = ")]
    if key == "token_file":
        lines = [ln for ln in lines if not ln.startswith("token_env")]
    text = "\n".join([*lines, line]) + "\n"
    refused(write(tmp_path, text), run, "[[targets]] #1", f": {key}: ", *parts)


@pytest.mark.parametrize("key", ["name", "account_id", "rule_name", "sources"])
def test_a_required_target_key_is_refused_when_missing(
    tmp_path: Path, run: RunSettings, key: str
) -> None:
    """name, account_id, rule_name and sources are required in every target."""
    text = "\n".join(ln for ln in TARGET.splitlines() if not ln.startswith(f"{key} = ")) + "\n"
    refused(write(tmp_path, text), run, "[[targets]] #1", key, "required")


def test_target_names_are_unique(tmp_path: Path, run: RunSettings) -> None:
    """Two targets with one name are refused (names key metrics and files)."""
    second = TARGET.split("[[targets]]")[1].replace("12345", "999")
    text = TARGET + "[[targets]]" + second
    refused(write(tmp_path, text), run, '[[targets]] #2 "prod-us": name', "#1")


def test_two_targets_owning_one_rule_are_refused(tmp_path: Path, run: RunSettings) -> None:
    """Two targets on the same account, host and rule name would fight: refused."""
    second = TARGET.split("[[targets]]")[1].replace("prod-us", "prod-us-2")
    second = second.replace(
        'name = "prod-us-2"', 'name = "prod-us-2"\nhost_url = "https://cloud.getdbt.com/api"'
    )
    text = TARGET + "[[targets]]" + second
    refused(write(tmp_path, text), run, '[[targets]] #2 "prod-us-2": rule_name', '"prod-us"')


def test_one_rule_name_on_two_accounts_is_fine(tmp_path: Path, run: RunSettings) -> None:
    """The same rule name on another account is another rule: accepted."""
    second = TARGET.split("[[targets]]")[1].replace("prod-us", "eu").replace("12345", "777")
    config = read_config(write(tmp_path, TARGET + "[[targets]]" + second), run)
    assert [t.name for t in config.targets] == ["prod-us", "eu"]


def test_a_target_that_is_not_named_validly_is_not_echoed(tmp_path: Path, run: RunSettings) -> None:
    """A target whose name is invalid is labelled by its number only."""
    text = TARGET.replace('name = "prod-us"', 'name = "bad name"')
    message = refused(write(tmp_path, text), run, "[[targets]] #1: name")
    assert '#1 "bad name"' not in message


def test_the_settings_from_the_environment_are_not_consulted(
    tmp_path: Path, run: RunSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A target's values come from the file, never from DBT_CLOUD_* or target variables."""
    monkeypatch.setenv("DBT_CLOUD_HOST_URL", "https://elsewhere.example.com")
    monkeypatch.setenv("ALLOWLIST_SYNC_MODE", "add-only")
    monkeypatch.setenv("PROD_US_DBT_TOKEN", TOKEN)
    config = read_config(write(tmp_path, TARGET), run)
    settings = target_settings(config, config.targets[0], run)
    assert settings.host_url == DEFAULT_HOST_URL
    assert settings.mode == "sync"


# --- target_settings ------------------------------------------------------------------------


def test_target_settings_reads_token_env(
    tmp_path: Path, run: RunSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The token comes from the variable token_env names, read when the target runs."""
    config = read_config(write(tmp_path, GOOD), run)
    monkeypatch.setenv("SANDBOX_DBT_TOKEN", TOKEN + "\n")
    settings = target_settings(config, config.targets[1], run)
    assert settings.service_token().get_secret_value() == TOKEN
    assert settings.account_id == 678
    assert settings.mode == "add-only"
    assert settings.ip_families == ["ipv4"]
    assert settings.extra_cidrs == ["8.8.4.0/24"]
    assert settings.exclude_cidrs == ["8.8.8.8/32"]
    assert settings.rule_description == "Managed by allowlist-sync"
    assert settings.aggregate is False
    assert settings.min_prefixes == 1 and settings.max_delete_fraction == 0.5
    assert settings.http_timeout == run.http_timeout
    assert "SANDBOX_DBT_TOKEN" in settings.token_source
    assert "sandbox" in settings.token_source


def test_target_settings_reads_token_file(tmp_path: Path, run: RunSettings) -> None:
    """The token comes from token_file (relative to the config), read when the target runs."""
    config = read_config(write(tmp_path, GOOD), run)
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "prod-us-token").write_text(TOKEN + "\n")
    settings = target_settings(config, config.targets[0], run)
    assert settings.service_token().get_secret_value() == TOKEN
    assert settings.account_id == 12345
    assert settings.host_url == "https://ab123.us1.dbt.com"
    assert settings.rule_name == "allowlist-sync: SCIM"
    assert "prod-us-token" in settings.token_source


def test_the_token_is_registered_as_a_secret(
    tmp_path: Path, run: RunSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once read, the token is scrubbed from every log line."""
    from allowlist_sync.logs import redact

    token = "dbtc_registered_only_here_4242"
    config = read_config(write(tmp_path, TARGET), run)
    monkeypatch.setenv("PROD_US_DBT_TOKEN", token)
    target_settings(config, config.targets[0], run)
    assert token not in redact(f"sent {token}")


@pytest.mark.parametrize("value", [None, ""])
def test_an_unset_token_env_fails_the_target(
    tmp_path: Path, run: RunSettings, monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    """A missing or empty token variable is a ConfigError naming the target and the variable."""
    config = read_config(write(tmp_path, TARGET), run)
    if value is not None:
        monkeypatch.setenv("PROD_US_DBT_TOKEN", value)
    with pytest.raises(ConfigError) as info:
        target_settings(config, config.targets[0], run)
    message = str(info.value)
    assert info.value.exit_code == ExitCode.CONFIG
    assert '[[targets]] #1 "prod-us": token_env' in message
    assert "PROD_US_DBT_TOKEN" in message and "not set" in message


def test_a_bad_token_in_the_variable_is_not_echoed(
    tmp_path: Path, run: RunSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A token with a space in it is refused naming the variable, never the value."""
    config = read_config(write(tmp_path, TARGET), run)
    monkeypatch.setenv("PROD_US_DBT_TOKEN", "dbtc_half token_value")
    with pytest.raises(ConfigError) as info:
        target_settings(config, config.targets[0], run)
    message = str(info.value)
    assert "PROD_US_DBT_TOKEN" in message and "whitespace" in message
    assert "half" not in message and "\n" not in message


def test_an_unreadable_token_file_fails_the_target(tmp_path: Path, run: RunSettings) -> None:
    """A missing token file is a ConfigError naming the target, the key and the path."""
    config = read_config(write(tmp_path, GOOD), run)
    with pytest.raises(ConfigError) as info:
        target_settings(config, config.targets[0], run)
    message = str(info.value)
    assert info.value.exit_code == ExitCode.CONFIG
    assert '[[targets]] #1 "prod-us": token_file' in message
    assert "prod-us-token" in message and "No such file" in message
    assert "DBT_CLOUD_TOKEN_FILE" not in message


def test_an_empty_token_file_fails_the_target(tmp_path: Path, run: RunSettings) -> None:
    """An empty token file is a ConfigError naming the target and the key."""
    config = read_config(write(tmp_path, GOOD), run)
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "prod-us-token").write_text("")
    with pytest.raises(ConfigError, match=r'#1 "prod-us": token_file .*is empty'):
        target_settings(config, config.targets[0], run)


def test_one_target_failing_leaves_the_other(
    tmp_path: Path, run: RunSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unreadable token fails only its own target: the other still gets its settings."""
    config = read_config(write(tmp_path, GOOD), run)
    monkeypatch.setenv("SANDBOX_DBT_TOKEN", TOKEN)
    with pytest.raises(ConfigError):
        target_settings(config, config.targets[0], run)
    assert target_settings(config, config.targets[1], run).account_id == 678


# --- the environment beside a file (the lead's load_run_settings) ---------------------------


def test_load_run_settings_refuses_a_target_variable_beside_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DBT_CLOUD_ACCOUNT_ID set beside a config file is a ConfigError naming it."""
    path = write(tmp_path, TARGET)
    monkeypatch.setenv("DBT_CLOUD_ACCOUNT_ID", "12345")
    with pytest.raises(ConfigError, match="DBT_CLOUD_ACCOUNT_ID set beside the config file"):
        load_run_settings(config_file=str(path))


# --- the worst values -----------------------------------------------------------------------


def test_deeply_nested_tables_are_refused(tmp_path: Path, run: RunSettings) -> None:
    """Arrays nested thousands deep are one config error, not a crash."""
    path = write(tmp_path, "x = " + "[" * 50_000 + "]" * 50_000 + "\n" + TARGET)
    refused(path, run, "nested too deeply")


def test_a_long_unknown_key_is_cut_in_the_message(tmp_path: Path, run: RunSettings) -> None:
    """A huge unknown key is shown cut short, so the message stays readable."""
    message = refused(write(tmp_path, "k" * 5000 + " = 1\n" + TARGET), run, "no such key")
    assert len(message) < 600


def test_a_control_character_in_a_source_name_is_escaped(tmp_path: Path, run: RunSettings) -> None:
    """A source name holding a line break is refused in one line, the break escaped."""
    text = TARGET + '[sources."a\\nb"]\ntype = "static"\ncidrs = ["8.8.8.0/24"]\n'
    refused(write(tmp_path, text), run, "[sources]", '"a\\nb"')


def test_a_token_in_a_nested_list_is_refused(tmp_path: Path, run: RunSettings) -> None:
    """A token hidden in a list of lists of tables is still found, and not echoed."""
    message = refused(
        write(tmp_path, f'x = [[{{t = "{TOKEN}"}}]]\n' + TARGET), run, "not a secret store"
    )
    assert TOKEN not in message


def test_a_token_looking_target_name_is_not_echoed(tmp_path: Path, run: RunSettings) -> None:
    """A token pasted as a target's name is refused, and the label shows only its number."""
    text = TARGET.replace('name = "prod-us"', f'name = "{TOKEN[:40]}"')
    message = refused(write(tmp_path, text), run, "[[targets]] #1: name", "not a secret store")
    assert TOKEN[:40] not in message


@pytest.mark.parametrize(
    "value", ["a" * 30 + "1234567890", "abcdef0123456789abcdef0123456789abcdef01"]
)
def test_a_token_env_that_looks_pasted_is_refused(
    tmp_path: Path, run: RunSettings, value: str
) -> None:
    """A long name without an underscore looks like a pasted token: refused without echo."""
    text = TARGET.replace('"PROD_US_DBT_TOKEN"', f'"{value}"')
    message = refused(write(tmp_path, text), run, "token_env", "looks like a token")
    assert value not in message


def test_an_unknown_key_is_named_before_a_missing_one(tmp_path: Path, run: RunSettings) -> None:
    """`nmae` instead of `name` says "did you mean name?", not just "name is required"."""
    text = TARGET.replace('name = "prod-us"', 'nmae = "prod-us"')
    refused(write(tmp_path, text), run, "nmae", "did you mean name?")
    text = TARGET.replace('type = "static"', 'typ = "static"')
    refused(write(tmp_path, text), run, "[sources.office]: typ", "did you mean type?")


def test_target_names_differing_in_case_are_refused(tmp_path: Path, run: RunSettings) -> None:
    """`Prod` and `prod` would share files on a case-insensitive disk: refused."""
    second = TARGET.split("[[targets]]")[1].replace("prod-us", "PROD-US").replace("12345", "9")
    refused(write(tmp_path, TARGET + "[[targets]]" + second), run, "name", "#1")


def test_items_with_spaces_around_are_refused(tmp_path: Path, run: RunSettings) -> None:
    """A tag or cell with a space around it would never match: refused naming the item."""
    text = TARGET + '[sources.okta]\ntype = "okta-ip-ranges"\ncells = ["us_cell_1 "]\n'
    refused(write(tmp_path, text), run, "[sources.okta]: cells", "item 1", "spaces")


def test_a_relative_config_path_gives_absolute_paths(
    tmp_path: Path, run: RunSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Paths from a config given relative to the working folder stay right if it changes."""
    text = TARGET.replace('token_env = "PROD_US_DBT_TOKEN"', 'token_file = "tok"')
    write(tmp_path, text)
    monkeypatch.chdir(tmp_path)
    config = read_config(Path("fleet.toml"), run)
    assert config.targets[0].token_file == tmp_path / "tok"
    assert config.path == Path("fleet.toml")


def test_a_token_looking_key_is_refused_without_echo(tmp_path: Path, run: RunSettings) -> None:
    """A token pasted as a key or a source name is refused, and never shown."""
    key = "dbtc_pasted_as_a_key_123456"
    message = refused(write(tmp_path, with_target(f"{key} = 1\n")), run, "not a secret store")
    assert key not in message
    text = TARGET + f'[sources.{key}]\ntype = "static"\ncidrs = ["8.8.8.0/24"]\n'
    message = refused(write(tmp_path, text), run, "[sources]", "not a secret store")
    assert key not in message


def test_an_empty_sources_table_is_refused(tmp_path: Path, run: RunSettings) -> None:
    """`[sources]` with no source in it describes no source: refused."""
    refused(write(tmp_path, "[sources]\n[[targets]]" + TARGET.split("[[targets]]")[1]), run,
            "no [sources.NAME]")  # fmt: skip


def test_an_unknown_home_folder_is_refused(tmp_path: Path, run: RunSettings) -> None:
    """`~nosuchuser/...` cannot be expanded: refused naming the key, not joined to the folder."""
    text = TARGET.replace('token_env = "PROD_US_DBT_TOKEN"', 'token_file = "~nosuchuser_q9/t"')
    refused(write(tmp_path, text), run, "token_file", "home folder is unknown")


TWO_RULES = """
[sources.entra]
type = "azure-service-tags"

[[targets]]
name = "a"
account_id = 1
host_url = "{first}"
token_env = "A_TOKEN"
rule_name = "r"
sources = ["entra"]

[[targets]]
name = "b"
account_id = 1
host_url = "{second}"
token_env = "B_TOKEN"
rule_name = "r"
sources = ["entra"]
"""


@pytest.mark.parametrize(
    "second",
    [
        "https://CLOUD.getdbt.com",
        "https://cloud.getdbt.com:443/",
        "https://cloud.getdbt.com./api/",
    ],
)
def test_one_rule_spelt_two_ways_is_still_one_rule(
    tmp_path: Path, run: RunSettings, second: str
) -> None:
    """A default port, a trailing dot or case never makes two targets of one rule: they would
    write it at the same time."""
    text = TWO_RULES.format(first="https://cloud.getdbt.com", second=second)
    assert "two targets would fight" in refused(write(tmp_path, text), run, "rule_name")


def test_other_ports_or_hosts_are_other_rules(tmp_path: Path, run: RunSettings) -> None:
    """A different port or host is a different place: both targets load."""
    text = TWO_RULES.format(first="https://cloud.getdbt.com", second="https://emea.dbt.com")
    assert len(read_config(write(tmp_path, text), run).targets) == 2


def test_a_target_of_two_azure_sources_of_one_cloud_is_refused(
    tmp_path: Path, run: RunSettings
) -> None:
    """Two Azure sources of one cloud in one target are refused (the rule records one
    changeNumber per cloud), pointing at one source with both tags."""
    text = """
[sources.entra]
type = "azure-service-tags"
[sources.pinned]
type = "azure-service-tags"
file = "pinned.json"
[[targets]]
name = "a"
account_id = 1
token_env = "A_TOKEN"
rule_name = "r"
sources = ["entra", "pinned"]
"""
    message = refused(write(tmp_path, text), run, "sources")
    assert "both Azure Public sources" in message


def test_standard_input_feeds_one_source_at_most(tmp_path: Path, run: RunSettings) -> None:
    """Two sources reading `-` are refused: the second would read an empty stream."""
    text = """
[sources.one]
type = "azure-service-tags"
file = "-"
[sources.two]
type = "azure-service-tags"
cloud = "China"
file = "-"
[[targets]]
name = "a"
account_id = 1
token_env = "A_TOKEN"
rule_name = "r"
sources = ["one", "two"]
"""
    assert "standard input" in refused(write(tmp_path, text), run, "file")
