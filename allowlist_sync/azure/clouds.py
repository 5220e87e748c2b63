"""Where Microsoft publishes the service-tags file of each cloud.

Each cloud has a Download Center details page (by id) and a direct-download folder that has been
stable for years; only the date in the file name changes from week to week. Both can be replaced
in the settings by a mirror, a proxy or a test server.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

#: The details page of a Download Center item; `{id}` is the cloud's download id.
DETAILS_URL_TEMPLATE = "https://www.microsoft.com/en-us/download/details.aspx?id={id}"


@dataclass(frozen=True)
class Cloud:
    """One Azure cloud: its name in the file, its Download Center id and direct-download folder."""

    name: str
    download_id: int
    download_base: str

    def file_name(self, day: date) -> str:
        """The name Microsoft gives the file published on `day`."""
        return f"ServiceTags_{self.name}_{day:%Y%m%d}.json"


CLOUDS: dict[str, Cloud] = {
    cloud.name: cloud
    for cloud in (
        Cloud(
            "Public",
            56519,
            "https://download.microsoft.com/download/7/1/D/71D86715-5596-4529-9B13-DA13A5DE5B63",
        ),
        Cloud(
            "AzureGovernment",
            57063,
            "https://download.microsoft.com/download/6/4/D/64DB03BF-895B-4173-A8B1-BA4AD5D4DF22",
        ),
        Cloud(
            "China",
            57062,
            "https://download.microsoft.com/download/9/D/0/9D03B7E2-4B80-4BF3-9B91-DA8C7D3EE9F9",
        ),
    )
}


def cloud_named(name: str) -> Cloud:
    """The cloud called `name` (as in ALLOWLIST_SYNC_AZURE_CLOUD); KeyError for an unknown one."""
    return CLOUDS[name]


def details_url(cloud: Cloud, override: str | None = None) -> str:
    """The details page to scrape: the setting (a URL, `{id}` filled in) or Microsoft's own."""
    template = override or DETAILS_URL_TEMPLATE
    return template.replace("{id}", str(cloud.download_id))


def download_base(cloud: Cloud, override: str | None = None) -> str:
    """The folder holding `ServiceTags_<Cloud>_YYYYMMDD.json`, without a trailing slash."""
    return (override or cloud.download_base).rstrip("/")
