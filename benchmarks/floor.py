#!/usr/bin/env python3
"""The floor: the least a Python sync job built on the mandated packages can cost.

Our own equivalent of the shared floor script, so the benchmark works from a fresh clone. It
imports the packages allowlist-sync must use (httpx, pydantic-settings, structlog, tenacity),
reads and parses the service-tags file, takes the AzureActiveDirectory prefixes as networks, and
makes the one GET that reads the current rules. Nothing else.

usage: floor.py SERVICE_TAGS_FILE   (env: DBT_CLOUD_HOST_URL, DBT_CLOUD_ACCOUNT_ID, DBT_CLOUD_TOKEN)
"""

import ipaddress
import json
import os
import sys

import httpx
import pydantic_settings  # noqa: F401
import structlog  # noqa: F401
import tenacity  # noqa: F401

with open(sys.argv[1], "rb") as f:
    doc = json.loads(f.read())
prefixes = [
    p
    for v in doc["values"]
    if v["name"] == "AzureActiveDirectory"
    for p in v["properties"]["addressPrefixes"]
]
desired = [ipaddress.ip_network(p, strict=False) for p in prefixes]
host = os.environ["DBT_CLOUD_HOST_URL"].rstrip("/").removesuffix("/api")
account = os.environ["DBT_CLOUD_ACCOUNT_ID"]
r = httpx.get(
    f"{host}/api/v3/accounts/{account}/ip-restrictions/",
    headers={"Authorization": f"Token {os.environ['DBT_CLOUD_TOKEN']}"},
)
r.raise_for_status()
print(len(desired), len(r.json()["data"]))
