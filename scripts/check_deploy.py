"""Offline checks of the shipping files: Kubernetes manifests, compose file, Dockerfile, lock files.

Run by scripts/check-deploy.sh with its tool venv (PyYAML, kubernetes-validate, packaging, and
the kubectl and docker-compose binaries). Failed checks print one line each (all checks with
--verbose); any failure makes the exit code 1.

- every Kubernetes manifest, as written and as rendered by `kubectl kustomize` for the base and
  each overlay, validates against the Kubernetes JSON schemas (strict: unknown fields fail);
- every path a kustomization names exists; secret.example.yaml is in no kustomization and holds
  no token;
- the rendered workloads keep the promises of the README (security context, token file, volumes,
  resources, schedule, probes, NetworkPolicy) and agree with the Dockerfile (UID, cache dir,
  health port); the CronJob runs daily, spreads its retries past dbt's rate-limit cool-down,
  leaves each attempt its ALLOWLIST_SYNC_RUN_TIMEOUT, fails at once on the exit codes no retry
  can fix and ignores node drains; the cache dir is a PersistentVolumeClaim; only the
  pushgateway overlay may reach the Pushgateway, and only Prometheus' namespace may reach serve;
- compose.yaml passes `docker compose config`, has the keys the README relies on, and reads the
  token from a compose secret file, never from the environment;
- a config-file setup (the kubernetes fleet overlay, compose.fleet.yaml): ALLOWLIST_SYNC_CONFIG
  names a file mounted read-only, no variable of the environment's one target
  (config.target_env_names()) reaches the container, every target's token_file lies in a
  read-only Secret mount (a key of the example Secret), and the mounted file is read by the
  project's own `load_run_settings` + `read_config` (with the project's venv; tomllib otherwise);
- deploy/monitoring: the alerting rules name only the metrics the program exports, each alert
  has a severity and a runbook in docs/running.md, and the PrometheusRule (checked structurally:
  kubernetes-validate has no schema for that CRD) is rules.yaml, generated
  (`--write-prometheusrule` rewrites it); promtool checks and tests them in check-deploy.sh;
- requirements.lock pins, with hashes, a version of every dependency pyproject.toml declares.
"""

from __future__ import annotations

import argparse
import ast
import json
import posixpath
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate.utils as kv
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

TOKEN_PATH = "/var/run/secrets/allowlist-sync/token"  # noqa: S105 (a path, not a token)
# A config file of targets instead of the environment's one target (docs/config.md).
CONFIG_ENV = "ALLOWLIST_SYNC_CONFIG"
SECRET_NAME = "allowlist-sync-token"  # noqa: S105 (a name, not a token)
TMP_DIR = "/tmp"  # noqa: S108 (where the manifests mount an emptyDir/tmpfs, not a temp file)
# dbt platform service tokens look like dbtc_ followed by a long random string.
REAL_TOKEN = re.compile(r"dbtc_[A-Za-z0-9_-]{20,}")

# The CronJob: daily, and exit codes no retry can fix (guard refusal, usage, a token the platform
# refuses, configuration; allowlist_sync.errors.ExitCode) fail the Job at once.
SCHEDULE = "0 6 * * *"
NO_RETRY_EXIT_CODES = {3, 64, 77, 78}
# dbt's rate-limit cool-down; the Job's pod retries must reach past it (twice over).
RATE_LIMIT_COOLDOWN = 300
# Where Prometheus and the Pushgateway run: the namespace selected by its built-in name label.
MONITORING_NAMESPACE = {"kubernetes.io/metadata.name": "monitoring"}
PUSHGATEWAY_PORT = 9091
# The metric names the program exports (a contract: allowlist_sync/reporting/metrics.py, docs/running.md).
METRICS = {
    "allowlist_sync_last_success_timestamp_seconds",
    "allowlist_sync_last_run_success",
    "allowlist_sync_last_run_timestamp_seconds",
    "allowlist_sync_consecutive_failures",
    "allowlist_sync_source_file_timestamp_seconds",
    "allowlist_sync_source_cache_used",
    "allowlist_sync_next_retry_timestamp_seconds",
    "allowlist_sync_runs_total",
    "allowlist_sync_build_info",
}
# The alerts docs/running.md promises, with their severity.
ALERTS = {
    "AllowlistSyncStale": "page",
    "AllowlistSyncFailing": "ticket",
    "AllowlistSyncFeedStale": "ticket",
}
RUNBOOK_PAGE = "docs/running.md"


class Checks:
    """Collects results; `fail` prints one line, `ok` too when verbose."""

    def __init__(self, verbose: bool = False) -> None:
        self.verbose = verbose
        self.passed = 0
        self.failures = 0

    def ok(self, what: str) -> None:
        self.passed += 1
        if self.verbose:
            print(f"ok    {what}")

    def fail(self, what: str) -> None:
        self.failures += 1
        print(f"FAIL  {what}")

    def note(self, what: str) -> None:
        """Something the reader should know that is neither a pass nor a failure."""
        print(f"note  {what}")

    def expect(self, condition: bool, what: str) -> bool:
        if condition:
            self.ok(what)
        else:
            self.fail(what)
        return condition


def load_docs(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def validate_objects(
    checks: Checks, docs: list[dict[str, Any]], where: str, versions: list[str]
) -> None:
    """Schema-validate each object (strict) against each Kubernetes version."""
    for doc in docs:
        name = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        if doc.get("kind") == "PrometheusRule":
            # A CRD: kubernetes-validate only knows the built-in kinds.
            checks.note(f"{where}: {name}: no Kubernetes schema (a CRD); checked structurally")
            check_prometheusrule_object(checks, where, doc)
            continue
        for version in versions:
            try:
                kv.validate(doc, version, strict=True)
            except kv.ValidationError as exc:
                path = ".".join(str(p) for p in exc.path)
                checks.fail(
                    f"{where}: {name} invalid for Kubernetes {version}: {path}: {exc.message}"
                )
            except (kv.SchemaNotFoundError, kv.InvalidSchemaError) as exc:
                checks.fail(f"{where}: {name}: {exc.message}")
            else:
                checks.ok(f"{where}: {name} valid for Kubernetes {version}")


def kustomization_dirs(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.rglob("kustomization.yaml"))


def check_kustomization_paths(checks: Checks, kdir: Path, repo: Path) -> set[Path]:
    """Every resource and patch file a kustomization names exists; returns the files it names."""
    spec = yaml.safe_load((kdir / "kustomization.yaml").read_text())
    named: set[Path] = set()
    entries = list(spec.get("resources", []))
    entries += [p["path"] for p in spec.get("patches", []) if isinstance(p, dict) and "path" in p]
    entries += spec.get("patchesStrategicMerge", [])
    for entry in entries:
        target = (kdir / entry).resolve()
        exists = target.is_file() or (target / "kustomization.yaml").is_file()
        checks.expect(exists, f"{kdir.relative_to(repo)}/kustomization.yaml: {entry} exists")
        named.add(target)
    return named


def render(kubectl: str, kdir: Path) -> str:
    result = subprocess.run(
        [kubectl, "kustomize", str(kdir)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(result.stderr.strip() or f"kubectl kustomize exited {result.returncode}")
    return result.stdout


def find(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d.get("kind") == kind]


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    if workload["kind"] == "CronJob":
        return dict(workload["spec"]["jobTemplate"]["spec"]["template"]["spec"])
    return dict(workload["spec"]["template"]["spec"])


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


def check_pod(
    checks: Checks,
    where: str,
    spec: dict[str, Any],
    image: dict[str, Any],
    claims: dict[str, dict[str, Any]],
    fleet: bool = False,
) -> None:
    """The promises every allowlist-sync pod keeps (a fleet's tokens: check_fleet_pod)."""
    uid = image["uid"]
    psc = spec.get("securityContext", {})
    checks.expect(
        psc.get("runAsNonRoot") is True
        and psc.get("runAsUser") == uid
        and psc.get("runAsGroup") == uid
        and psc.get("fsGroup") == uid
        and psc.get("seccompProfile", {}).get("type") == "RuntimeDefault",
        f"{where}: pod securityContext non-root {uid}:{uid}, fsGroup {uid}, seccomp RuntimeDefault",
    )
    checks.expect(spec.get("automountServiceAccountToken") is False, f"{where}: no API token")
    (container,) = spec["containers"]
    csc = container.get("securityContext", {})
    checks.expect(
        csc.get("readOnlyRootFilesystem") is True
        and csc.get("allowPrivilegeEscalation") is False
        and csc.get("capabilities", {}).get("drop") == ["ALL"],
        f"{where}: container read-only root, no privilege escalation, all capabilities dropped",
    )
    resources = container.get("resources", {})
    checks.expect(
        all(k in resources.get("requests", {}) for k in ("cpu", "memory"))
        and "memory" in resources.get("limits", {}),
        f"{where}: cpu/memory requests and a memory limit",
    )
    env = env_of(container)
    mounts = {m["mountPath"]: m for m in container.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    token_dir = str(Path(env.get("DBT_CLOUD_TOKEN_FILE", "/")).parent)
    token_mount = mounts.get(token_dir, {})
    token_volume = volumes.get(token_mount.get("name", ""), {})
    if not fleet:
        checks.expect(
            env.get("DBT_CLOUD_TOKEN_FILE") == TOKEN_PATH
            and "DBT_CLOUD_TOKEN" not in env
            and token_mount.get("readOnly") is True
            and token_volume.get("secret", {}).get("secretName") == SECRET_NAME
            and {"key": "token", "path": "token"}
            in token_volume.get("secret", {}).get("items", []),
            f"{where}: token read from Secret {SECRET_NAME} mounted at {TOKEN_PATH}",
        )
    checks.expect(
        any("configMapRef" in ref for ref in container.get("envFrom", [])),
        f"{where}: settings from a ConfigMap (envFrom)",
    )
    tmp = volumes.get(mounts.get(TMP_DIR, {}).get("name", ""), {})
    checks.expect("emptyDir" in tmp, f"{where}: emptyDir mounted at {TMP_DIR}")
    # The last good feed file and the run state must outlive the pod: a claim, not an emptyDir.
    cache_mount = mounts.get(image["cache_dir"], {})
    cache = volumes.get(cache_mount.get("name", ""), {})
    claim = claims.get(cache.get("persistentVolumeClaim", {}).get("claimName", ""), {})
    checks.expect(
        bool(claim)
        and not cache_mount.get("readOnly")
        and claim.get("spec", {}).get("accessModes") == ["ReadWriteOnce"]
        and "storage" in claim.get("spec", {}).get("resources", {}).get("requests", {}),
        f"{where}: a ReadWriteOnce PersistentVolumeClaim of this kustomization mounted at "
        f"{image['cache_dir']}",
    )
    checks.expect(
        env.get("ALLOWLIST_SYNC_CACHE_DIR", image["cache_dir"]) == image["cache_dir"],
        f"{where}: ALLOWLIST_SYNC_CACHE_DIR is the mounted cache dir",
    )


def check_networkpolicy(
    checks: Checks, where: str, docs: list[dict[str, Any]], pushgateway: bool
) -> None:
    policies = find(docs, "NetworkPolicy")
    if not checks.expect(len(policies) == 1, f"{where}: one NetworkPolicy"):
        return
    spec = policies[0]["spec"]
    workloads = find(docs, "CronJob") + find(docs, "Deployment")
    selector = spec["podSelector"].get("matchLabels", {})
    for w in workloads:
        labels = (
            w["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
            if w["kind"] == "CronJob"
            else w["spec"]["template"]["metadata"]["labels"]
        )
        checks.expect(
            selector.items() <= labels.items(), f"{where}: NetworkPolicy selects {w['kind']} pods"
        )
    anywhere = [rule for rule in spec["egress"] if "to" not in rule]
    egress_ports = sorted(
        (p.get("protocol", "TCP"), p["port"]) for rule in anywhere for p in rule["ports"]
    )
    checks.expect(
        set(spec["policyTypes"]) == {"Ingress", "Egress"}
        and egress_ports == [("TCP", 53), ("TCP", 443), ("UDP", 53)],
        f"{where}: egress to anywhere only DNS (53 UDP/TCP) and HTTPS (443)",
    )
    to_monitoring = {
        "to": [{"namespaceSelector": {"matchLabels": MONITORING_NAMESPACE}}],
        "ports": [{"protocol": "TCP", "port": PUSHGATEWAY_PORT}],
    }
    targeted = [rule for rule in spec["egress"] if "to" in rule]
    want_targeted = [to_monitoring] if pushgateway else []
    checks.expect(
        targeted == want_targeted,
        f"{where}: egress "
        + (
            f"to the monitoring namespace's Pushgateway (TCP {PUSHGATEWAY_PORT}) only"
            if pushgateway
            else "to nothing else (the Pushgateway port is the pushgateway overlay's alone)"
        ),
    )
    ingress = spec.get("ingress", [])
    from_monitoring = {
        "from": [{"namespaceSelector": {"matchLabels": MONITORING_NAMESPACE}}],
        "ports": [{"protocol": "TCP", "port": 8080}],
    }
    want_ingress = [from_monitoring] if find(docs, "Deployment") else []
    checks.expect(
        ingress == want_ingress,
        f"{where}: ingress "
        + ("only TCP 8080 from the monitoring namespace" if want_ingress else "none"),
    )


def check_pushgateway_url(
    checks: Checks, where: str, docs: list[dict[str, Any]], pushgateway: bool
) -> None:
    """The pushgateway overlay pushes where its NetworkPolicy lets it; nothing else pushes."""
    data = {k: v for cm in find(docs, "ConfigMap") for k, v in cm.get("data", {}).items()}
    url = data.get("ALLOWLIST_SYNC_PUSHGATEWAY_URL")
    if not pushgateway:
        checks.expect(url is None, f"{where}: no ALLOWLIST_SYNC_PUSHGATEWAY_URL (egress closed)")
        return
    parts = urlsplit(url or "")
    namespace = (parts.hostname or "").split(".")[1:2]
    checks.expect(
        parts.scheme in ("http", "https")
        and parts.port == PUSHGATEWAY_PORT
        and namespace == list(MONITORING_NAMESPACE.values()),
        f"{where}: ALLOWLIST_SYNC_PUSHGATEWAY_URL {url!r} is a Service in the monitoring "
        f"namespace on port {PUSHGATEWAY_PORT}",
    )


def job_backoffs(backoff_limit: int) -> list[int]:
    """Seconds the Job controller waits before each retry: 10 s doubling, capped at 6 minutes."""
    return [min(10 * 2**i, 360) for i in range(backoff_limit)]


def check_cronjob(
    checks: Checks, where: str, cronjob: dict[str, Any], docs: list[dict[str, Any]], dry_run: bool
) -> None:
    spec = cronjob["spec"]
    job = spec["jobTemplate"]["spec"]
    pod = job["template"]["spec"]
    checks.expect(
        spec.get("concurrencyPolicy") == "Forbid"
        and spec.get("timeZone") == "Etc/UTC"
        and len(spec.get("schedule", "").split()) == 5
        and isinstance(spec.get("startingDeadlineSeconds"), int)
        and "successfulJobsHistoryLimit" in spec
        and "failedJobsHistoryLimit" in spec,
        f"{where}: CronJob schedule, Forbid, deadline, history limits",
    )
    checks.expect(
        spec.get("schedule") == SCHEDULE, f"{where}: schedule {spec.get('schedule')!r} is daily"
    )
    backoff_limit = job.get("backoffLimit")
    deadline = job.get("activeDeadlineSeconds")
    if not checks.expect(
        isinstance(backoff_limit, int)
        and isinstance(deadline, int)
        and pod.get("restartPolicy") == "Never",
        f"{where}: Job backoffLimit, activeDeadlineSeconds, restartPolicy Never",
    ):
        return
    backoffs = job_backoffs(backoff_limit)
    checks.expect(
        sum(backoffs) > 2 * RATE_LIMIT_COOLDOWN,
        f"{where}: the last retry starts {sum(backoffs)} s after the first failure, past twice "
        f"dbt's {RATE_LIMIT_COOLDOWN} s rate-limit cool-down (backoffLimit {backoff_limit})",
    )
    data = {k: v for cm in find(docs, "ConfigMap") for k, v in cm.get("data", {}).items()}
    try:
        run_timeout = float(data["ALLOWLIST_SYNC_RUN_TIMEOUT"])
    except (KeyError, ValueError):
        checks.fail(f"{where}: the ConfigMap sets ALLOWLIST_SYNC_RUN_TIMEOUT (seconds)")
    else:
        need = (backoff_limit + 1) * run_timeout + sum(backoffs)
        checks.expect(
            deadline >= need,
            f"{where}: activeDeadlineSeconds {deadline} >= {backoff_limit + 1} attempts x "
            f"ALLOWLIST_SYNC_RUN_TIMEOUT {run_timeout:g} + {sum(backoffs)} s back-off = {need:g}",
        )
    rules = job.get("podFailurePolicy", {}).get("rules", [])
    container = pod["containers"][0]["name"]
    fail_codes = {
        code
        for rule in rules
        if rule.get("action") == "FailJob"
        and rule.get("onExitCodes", {}).get("operator") == "In"
        and rule["onExitCodes"].get("containerName") == container
        for code in rule["onExitCodes"].get("values", [])
    }
    checks.expect(
        fail_codes == NO_RETRY_EXIT_CODES,
        f"{where}: podFailurePolicy fails the Job at once on exit codes "
        f"{sorted(NO_RETRY_EXIT_CODES)} (got {sorted(fail_codes)}); 1 is retried",
    )
    checks.expect(
        any(
            rule.get("action") == "Ignore"
            and {"type": "DisruptionTarget", "status": "True"} in rule.get("onPodConditions", [])
            for rule in rules
        ),
        f"{where}: podFailurePolicy ignores DisruptionTarget (a node drain is not a failure)",
    )
    args = pod["containers"][0].get("args", [])
    want = ["sync", "--output", "json", *(["--dry-run"] if dry_run else [])]
    checks.expect(args == want, f"{where}: args {args} == {want}")


# Run by the project's own Python (the venv of `pip install -e .`): the program's reading of a
# mounted config file, in the environment the container gets. Prints one JSON object.
READ_CONFIG = """
import json, sys
from pathlib import Path
from allowlist_sync.config import load_run_settings, target_env_names
from allowlist_sync.config.file import read_config
from allowlist_sync.errors import AllowlistSyncError
result = {"target_env_names": sorted(target_env_names())}
try:
    config = read_config(Path(sys.argv[1]), load_run_settings(config_file=sys.argv[1]))
except AllowlistSyncError as exc:
    result["error"] = str(exc)
else:
    result["targets"] = [t.name for t in config.targets]
print(json.dumps(result))
"""


@dataclass
class FleetFacts:
    """What a config-file setup is checked against: its container's environment and mounts."""

    target_names: set[str]  # config.target_env_names(), from the source
    project_python: str | None
    env: dict[str, str] = field(default_factory=dict)  # literal values: envFrom, then env
    secret_env: set[str] = field(default_factory=set)  # variables set from a Secret
    config_dir: str = "/"  # where the config file is mounted in the container
    # mount path -> the file names a read-only Secret mount holds (None: whatever it holds)
    secret_dirs: dict[str, set[str] | None] = field(default_factory=dict)


def pod_env(container: dict[str, Any], docs: list[dict[str, Any]]) -> dict[str, str]:
    """The container's variables with literal values: envFrom ConfigMaps first, then env."""
    maps = {cm["metadata"]["name"]: cm.get("data", {}) for cm in find(docs, "ConfigMap")}
    env: dict[str, str] = {}
    for ref in container.get("envFrom", []):
        if "configMapRef" in ref:
            data = maps.get(ref["configMapRef"].get("name", ""), {})
            env.update({ref.get("prefix", "") + k: str(v) for k, v in data.items()})
    env.update(env_of(container))
    return env


def check_fleet_pod(
    checks: Checks,
    where: str,
    spec: dict[str, Any],
    docs: list[dict[str, Any]],
    examples: dict[str, set[str]],
    facts: FleetFacts,
) -> None:
    """A pod whose targets a mounted config file describes: the file, the tokens, no target env."""
    (container,) = spec["containers"]
    facts.env = pod_env(container, docs)
    facts.secret_env = {
        e["name"] for e in container.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})
    }
    checks.expect(
        not any("secretRef" in ref for ref in container.get("envFrom", [])),
        f"{where}: no envFrom Secret (its variables cannot be checked against the config file)",
    )
    mounts = {m["mountPath"].rstrip("/"): m for m in container.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    facts.secret_dirs = {}
    for path, mount in mounts.items():
        secret = volumes.get(mount["name"], {}).get("secret")
        if secret is None or mount.get("readOnly") is not True or "subPath" in mount:
            continue
        items = secret.get("items")
        held = {i["path"] for i in items} if items else examples.get(secret["secretName"])
        checks.expect(
            held is not None,
            f"{where}: Secret {secret['secretName']} mounted at {path} has a secret.example.yaml "
            "beside the kustomization (the keys its config file's token_file names)",
        )
        facts.secret_dirs[path] = held
    path = facts.env.get(CONFIG_ENV, "")
    mount = mounts.get(posixpath.dirname(path), {})
    source = volumes.get(mount.get("name", ""), {}).get("configMap", {})
    items = {i["path"]: i["key"] for i in source.get("items", [])} or None
    key = (items or {}).get(posixpath.basename(path), posixpath.basename(path))
    maps = {cm["metadata"]["name"]: cm.get("data", {}) for cm in find(docs, "ConfigMap")}
    data = maps.get(source.get("name", ""), {})
    if not checks.expect(
        posixpath.isabs(path)
        and mount.get("readOnly") is True
        and "subPath" not in mount
        and (items is None or posixpath.basename(path) in items)
        and key in data,
        f"{where}: {CONFIG_ENV} {path!r} is a file of a ConfigMap of this kustomization, "
        "mounted read-only (a directory mount: a new ConfigMap reaches the next run)",
    ):
        return
    facts.config_dir = posixpath.dirname(path)
    check_fleet_config(checks, where, data[key], facts)


def resolve_in(folder: str, raw: str) -> str | None:
    """A config file's path as the program resolves it in the container; None for `~`."""
    if raw.startswith("~"):
        return None
    return posixpath.normpath(posixpath.join(folder, raw))


def check_fleet_config(checks: Checks, where: str, text: str, facts: FleetFacts) -> None:
    """The mounted config file: read as the program reads it, every token in a Secret mount."""
    leaked = sorted(n for n in facts.env if n.upper() in facts.target_names)
    checks.expect(
        not leaked,
        f"{where}: no variable of the environment's one target beside {CONFIG_ENV} (the "
        f"program refuses them, exit 78) {leaked or ''}",
    )
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        checks.fail(f"{where}: the mounted config file is not TOML: {exc}")
        return
    targets = document.get("targets")
    if not checks.expect(
        isinstance(targets, list)
        and bool(targets)
        and all(isinstance(t, dict) and isinstance(t.get("name"), str) for t in targets),
        f"{where}: the mounted config file has [[targets]], each with a name",
    ):
        return
    for target in targets:
        name = target["name"]
        if "token_env" in target:
            checks.expect(
                target["token_env"] in facts.secret_env,
                f"{where}: target {name}: token_env {target['token_env']!r} is set from a "
                "Secret (secretKeyRef)",
            )
            continue
        raw = target.get("token_file")
        path = resolve_in(facts.config_dir, str(raw or ""))
        folder, file = posixpath.split(path or "")
        if path is None or folder not in facts.secret_dirs:
            checks.fail(
                f"{where}: target {name}: token_file {raw!r} is in no read-only token mount "
                f"(a Secret; in compose a directory .gitignore keeps out): "
                f"{sorted(facts.secret_dirs)}"
            )
            continue
        held = facts.secret_dirs[folder]
        checks.expect(
            held is None or file in held,
            f"{where}: target {name}: token_file {raw!r} is "
            + (
                f"a key of the Secret mounted at {folder} (keys: {sorted(held)})"
                if held is not None
                else f"in the read-only token mount {folder}"
            ),
        )
    check_read_config(checks, where, text, facts, [t["name"] for t in targets])


def check_read_config(
    checks: Checks, where: str, text: str, facts: FleetFacts, names: list[str]
) -> None:
    """The program itself reads the file, in the container's environment (project venv)."""
    if facts.project_python is None:
        checks.note(
            f"{where}: config file checked with tomllib only: no project venv to run "
            "read_config (python3 -m venv .venv && .venv/bin/pip install -e .)"
        )
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.toml"
        path.write_text(text)
        result = subprocess.run(
            [facts.project_python, "-c", READ_CONFIG, str(path)],
            capture_output=True, text=True, check=False, env=facts.env,
        )  # fmt: skip
    try:
        answer = json.loads(result.stdout)
    except ValueError:
        checks.fail(f"{where}: read_config did not run: {result.stderr.strip()[-400:]}")
        return
    error = str(answer.get("error", "")).replace(str(path), "config.toml")
    checks.expect(
        not error and answer.get("targets") == names,
        f"{where}: the program reads the mounted config file in the container's environment "
        f"(load_run_settings + read_config) {error}",
    )
    checks.expect(
        set(answer["target_env_names"]) == facts.target_names,
        "scripts/check_deploy.py: target_env_names() parsed from settings.py matches the package's",
    )


def check_deployment(checks: Checks, where: str, deployment: dict[str, Any], port: int) -> None:
    spec = deployment["spec"]
    (container,) = spec["template"]["spec"]["containers"]
    checks.expect(
        spec.get("replicas") == 1 and spec.get("strategy", {}).get("type") == "Recreate",
        f"{where}: one replica, Recreate (never two schedulers)",
    )
    checks.expect(container.get("args") == ["serve"], f"{where}: args ['serve']")
    ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
    for probe, path in (("livenessProbe", "/livez"), ("readinessProbe", "/readyz")):
        get = container.get(probe, {}).get("httpGet", {})
        target = ports.get(get.get("port"), get.get("port"))
        checks.expect(
            get.get("path") == path and target == port, f"{where}: {probe} on {path}:{port}"
        )


def setting_names(config_dir: Path) -> set[str]:
    """The ALLOWLIST_SYNC_* variables the program reads: its settings fields, upper-cased."""
    fields = {
        node.target.id
        for config_py in (config_dir / "runsettings.py", config_dir / "settings.py")
        for cls in ast.parse(config_py.read_text()).body
        if isinstance(cls, ast.ClassDef) and cls.name in ("RunSettings", "Settings")
        for node in cls.body
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
    }
    other = {
        node.value
        for assign in ast.parse((config_dir / "environment.py").read_text()).body
        if isinstance(assign, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "OTHER_ENV_NAMES" for t in assign.targets)
        for node in ast.walk(assign.value)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }
    return {"ALLOWLIST_SYNC_" + field.upper() for field in fields} | other


def target_env_names(config_dir: Path) -> set[str]:
    """The variables of the environment's one target (config.target_env_names()): the fields
    Settings adds to RunSettings, by their alias or ALLOWLIST_SYNC_ name. The program refuses
    them beside a config file (exit 78)."""
    names = set()
    for cls in ast.parse((config_dir / "settings.py").read_text()).body:
        if not (isinstance(cls, ast.ClassDef) and cls.name == "Settings"):
            continue
        for node in cls.body:
            if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
                continue
            if node.target.id.startswith("_"):
                continue
            alias = [
                kw.value.value
                for kw in (node.value.keywords if isinstance(node.value, ast.Call) else [])
                if kw.arg == "validation_alias"
                and isinstance(kw.value, ast.Constant)
                and isinstance(kw.value.value, str)
            ]
            names.add(alias[0] if alias else "ALLOWLIST_SYNC_" + node.target.id.upper())
    return names


def check_setting_names(checks: Checks, where: str, names: set[str], known: set[str]) -> None:
    """A misspelt ALLOWLIST_SYNC_* variable is a configuration error at run time: catch it here."""
    unknown = sorted(n for n in names if n.startswith("ALLOWLIST_SYNC_") and n not in known)
    checks.expect(
        not unknown, f"{where}: every ALLOWLIST_SYNC_* variable is a setting {unknown or ''}"
    )


def dockerfile_facts(checks: Checks, dockerfile: Path) -> dict[str, Any]:
    """What the manifests must agree with: the runtime stage's USER, cache dir, healthcheck."""
    text = dockerfile.read_text()
    runtime = text.split(" AS runtime", 1)[-1]
    user = re.search(r"^USER\s+(\d+):(\d+)\s*$", runtime, re.M)
    cache = re.search(r"ALLOWLIST_SYNC_CACHE_DIR=(\S+)", runtime)
    health = re.search(r"^HEALTHCHECK .*?CMD (\[.*?\])\s*$", runtime, re.M | re.S)
    facts: dict[str, Any] = {}
    if checks.expect(bool(user and user[1] == user[2]), "Dockerfile: numeric USER uid:gid"):
        facts["uid"] = int(user[1])  # type: ignore[index]
    if checks.expect(bool(cache), "Dockerfile: ALLOWLIST_SYNC_CACHE_DIR set"):
        facts["cache_dir"] = cache[1]  # type: ignore[index]
    volumes = re.search(r"^VOLUME\s+(\[.*\])", runtime, re.M)
    checks.expect(
        bool(volumes and {facts.get("cache_dir"), TMP_DIR} <= set(json.loads(volumes[1]))),
        "Dockerfile: VOLUME for the cache dir and /tmp",
    )
    if checks.expect(bool(health and "/livez" in health[1]), "Dockerfile: HEALTHCHECK on /livez"):
        command = json.loads(health[1].replace("\\\n", " "))  # type: ignore[index]
        facts["healthcheck"] = command
        port = re.search(r"'(\d+)'\)", command[-1])
        facts["health_port"] = int(port[1]) if port else 8080
    checks.expect(
        re.search(r'^ENTRYPOINT \["allowlist-sync"\]\s*$', runtime, re.M) is not None
        and re.search(r'^CMD \["serve"\]\s*$', runtime, re.M) is not None,
        'Dockerfile: ENTRYPOINT ["allowlist-sync"], CMD ["serve"]',
    )
    return facts


def check_kubernetes(
    checks: Checks, repo: Path, kubectl: str, versions: list[str], image: dict[str, Any]
) -> None:
    root = repo / "deploy" / "kubernetes"
    named: set[Path] = set()
    kdirs = kustomization_dirs(root)
    for kdir in kdirs:
        named |= check_kustomization_paths(checks, kdir, repo)

    # Every manifest file as written (kustomizations themselves have no Kubernetes schema).
    for path in sorted(root.rglob("*.yaml")):
        if path.name != "kustomization.yaml":
            validate_objects(
                checks, load_docs(path.read_text()), str(path.relative_to(repo)), versions
            )

    # Example Secrets (the base's token, the fleet overlay's tokens): never applied, no token.
    examples: dict[Path, dict[str, set[str]]] = {}
    for path in sorted(root.rglob("secret.example.yaml")):
        shown = str(path.relative_to(repo))
        checks.expect(path.resolve() not in named, f"{shown} is in no kustomization")
        secrets = find(load_docs(path.read_text()), "Secret")
        values = [v for s in secrets for v in s.get("stringData", {}).values()]
        checks.expect(
            bool(values)
            and all(str(v).startswith("REPLACE") for v in values)
            and not any("data" in s for s in secrets),
            f"{shown}: placeholder values only, in stringData",
        )
        examples[path.parent] = {
            s["metadata"]["name"]: set(s.get("stringData", {})) for s in secrets
        }
    example = root / "secret.example.yaml"
    secret = load_docs(example.read_text())[0]
    token = str(secret.get("stringData", {}).get("token", ""))
    checks.expect(
        secret.get("metadata", {}).get("name") == SECRET_NAME and token.startswith("REPLACE"),
        f"secret.example.yaml: Secret {SECRET_NAME} with a placeholder token",
    )
    leaks = [
        str(p.relative_to(repo))
        for p in (repo / "deploy").rglob("*")
        if p.is_file() and REAL_TOKEN.search(p.read_text(errors="replace"))
    ]
    checks.expect(not leaks, f"no dbt service token in deploy/ {leaks or ''}")

    for kdir in kdirs:
        where = str(kdir.relative_to(repo))
        try:
            docs = load_docs(render(kubectl, kdir))
        except RuntimeError as exc:
            checks.fail(f"{where}: kubectl kustomize: {exc}")
            continue
        checks.ok(f"{where}: kubectl kustomize renders {len(docs)} objects")
        validate_objects(checks, docs, f"{where} (rendered)", versions)
        if kdir == root / "base" or kdir == root:
            kinds = sorted(d["kind"] for d in docs)
            checks.expect(
                kinds
                == [
                    "ConfigMap",
                    "CronJob",
                    "Namespace",
                    "NetworkPolicy",
                    "PersistentVolumeClaim",
                    "ServiceAccount",
                ],
                f"{where}: renders Namespace, ServiceAccount, ConfigMap, NetworkPolicy, "
                "PersistentVolumeClaim, CronJob",
            )
            checks.expect(
                not find(docs, "Secret"), f"{where}: renders no Secret (created by the user)"
            )
        for sa in find(docs, "ServiceAccount"):
            checks.expect(
                sa.get("automountServiceAccountToken") is False,
                f"{where}: ServiceAccount does not automount a token",
            )
        workloads = find(docs, "CronJob") + find(docs, "Deployment")
        checks.expect(len(workloads) == 1, f"{where}: exactly one workload (CronJob or Deployment)")
        claims = {c["metadata"]["name"]: c for c in find(docs, "PersistentVolumeClaim")}
        for w in workloads:
            checks.expect(
                w["metadata"].get("namespace") == "allowlist-sync",
                f"{where}: {w['kind']} in namespace allowlist-sync",
            )
            spec = pod_spec(w)
            fleet = CONFIG_ENV in pod_env(spec["containers"][0], docs)
            check_pod(checks, f"{where}: {w['kind']}", spec, image, claims, fleet=fleet)
            if fleet:
                facts = FleetFacts(image["target_names"], image.get("project_python"))
                check_fleet_pod(
                    checks, f"{where}: {w['kind']}", spec, docs, examples.get(kdir, {}), facts
                )
        for cronjob in find(docs, "CronJob"):
            check_cronjob(checks, where, cronjob, docs, dry_run=kdir.name == "dry-run")
        for deployment in find(docs, "Deployment"):
            check_deployment(checks, where, deployment, image.get("health_port", 8080))
        check_setting_names(
            checks,
            where,
            {k for cm in find(docs, "ConfigMap") for k in cm.get("data", {})}
            | {n for w in workloads for c in pod_spec(w)["containers"] for n in env_of(c)},
            image["settings"],
        )
        pushgateway = kdir.name == "pushgateway"
        check_networkpolicy(checks, where, docs, pushgateway)
        check_pushgateway_url(checks, where, docs, pushgateway)


PROMETHEUSRULE_HEADER = """\
# GENERATED from ../rules.yaml: edit that file, then run (with check-deploy.sh's tools)
#   .cache/deploy-tools/bin/python scripts/check_deploy.py --write-prometheusrule
# CI fails when this file is not exactly what that writes.
#
# The alerting rules as a PrometheusRule for the Prometheus Operator (kube-prometheus-stack and
# the like), in the namespace "monitoring" (kustomization.yaml beside this file):
#   kubectl apply -k deploy/monitoring/prometheus-operator
# Prometheus loads a PrometheusRule only when its ruleSelector and ruleNamespaceSelector match;
# kube-prometheus-stack's default ruleSelector wants the label `release: <its Helm release>`: add
# it with an overlay of your own (or set ruleSelectorNilUsesHelmValues: false in its values).
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: allowlist-sync
  labels:
    app.kubernetes.io/name: allowlist-sync
    app.kubernetes.io/component: alerts
spec:
"""
RULE_GROUP_KEYS = {"name", "interval", "rules", "limit", "partial_response_strategy"}
RULE_KEYS = {"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"}
DURATION = re.compile(r"^((\d+)y)?((\d+)w)?((\d+)d)?((\d+)h)?((\d+)m)?((\d+)s)?((\d+)ms)?$")


def prometheusrule_text(rules_text: str) -> str:
    """The PrometheusRule manifest of a rules file: its groups under `spec`, comments kept."""
    start = re.search(r"^groups:", rules_text, re.M)
    body = rules_text[start.start() :] if start else rules_text
    indented = "".join(
        "  " + line if line.strip() else line for line in body.splitlines(keepends=True)
    )
    return PROMETHEUSRULE_HEADER + indented


def check_rule_groups(checks: Checks, where: str, spec: Any) -> None:
    """The shape Prometheus (and the PrometheusRule CRD) accepts: groups of alert rules."""
    groups = spec.get("groups") if isinstance(spec, dict) else None
    shaped = isinstance(groups, list) and bool(groups) and set(spec) == {"groups"}
    checks.expect(shaped, f"{where}: a non-empty list of rule groups and nothing else")
    if not shaped or not isinstance(groups, list):
        return
    names = [g.get("name") for g in groups if isinstance(g, dict)]
    checks.expect(
        len(names) == len(groups) and len(set(names)) == len(names) and all(names),
        f"{where}: every group has a unique name",
    )
    for group in groups:
        if not isinstance(group, dict):
            continue
        gname = group.get("name")
        rules = group.get("rules")
        shaped = set(group) <= RULE_GROUP_KEYS and isinstance(rules, list) and bool(rules)
        checks.expect(shaped, f"{where}: group {gname}: known keys and a non-empty list of rules")
        if not shaped or not isinstance(rules, list):
            continue
        for rule in rules:
            name = rule.get("alert") or rule.get("record") if isinstance(rule, dict) else None
            checks.expect(
                isinstance(rule, dict)
                and set(rule) <= RULE_KEYS
                and ("alert" in rule) != ("record" in rule)
                and isinstance(rule.get("expr"), str)
                and bool(rule["expr"].strip())
                and all(
                    isinstance(rule.get(k, "0s"), str) and DURATION.match(rule.get(k, "0s"))
                    for k in ("for", "keep_firing_for")
                )
                and all(
                    isinstance(rule.get(k, {}), dict)
                    and all(
                        isinstance(a, str) and isinstance(b, str)
                        for a, b in rule.get(k, {}).items()
                    )
                    for k in ("labels", "annotations")
                ),
                f"{where}: rule {name}: known keys, one of alert/record, an expr, durations, "
                "string labels and annotations",
            )


def check_prometheusrule_object(checks: Checks, where: str, doc: dict[str, Any]) -> None:
    """What the PrometheusRule CRD's schema asks, checked by hand."""
    metadata = doc.get("metadata", {})
    checks.expect(
        doc.get("apiVersion") == "monitoring.coreos.com/v1"
        and set(doc) == {"apiVersion", "kind", "metadata", "spec"}
        and bool(metadata.get("name")),
        f"{where}: PrometheusRule has apiVersion monitoring.coreos.com/v1, a name and a spec",
    )
    check_rule_groups(checks, f"{where}: PrometheusRule {metadata.get('name')}", doc.get("spec"))


def heading_anchors(markdown: str) -> set[str]:
    """The fragment GitHub gives each heading: lower case, punctuation dropped, spaces to '-'."""
    anchors = set()
    for line in markdown.splitlines():
        m = re.match(r"^#{1,6}\s+(.*?)\s*$", line)
        if m:
            text = re.sub(r"[^\w\- ]", "", m[1].lower())
            anchors.add(text.replace(" ", "-"))
    return anchors


def check_alerts(checks: Checks, where: str, spec: dict[str, Any], repo: Path) -> None:
    """The alerts the docs promise: severity, annotations, a runbook, only exported metrics."""
    rules = {
        r["alert"]: r
        for g in spec.get("groups", [])
        for r in g.get("rules", [])
        if isinstance(r, dict) and "alert" in r
    }
    anchors = heading_anchors((repo / RUNBOOK_PAGE).read_text())
    checks.expect(
        set(ALERTS) <= set(rules), f"{where}: alerts {sorted(ALERTS)} (got {sorted(rules)})"
    )
    for name, rule in rules.items():
        annotations = rule.get("annotations", {})
        severity = rule.get("labels", {}).get("severity")
        checks.expect(
            severity == ALERTS.get(name, severity) and severity in ("page", "ticket"),
            f"{where}: {name} has severity {ALERTS.get(name, 'page or ticket')} ({severity})",
        )
        checks.expect(
            {"summary", "description", "runbook_url"} <= set(annotations),
            f"{where}: {name} has summary, description and runbook_url annotations",
        )
        runbook = urlsplit(annotations.get("runbook_url", ""))
        checks.expect(
            runbook.scheme == "https"
            and runbook.path.endswith("/" + RUNBOOK_PAGE)
            and runbook.fragment == name.lower()
            and runbook.fragment in anchors,
            f"{where}: {name}'s runbook_url points at its own section of {RUNBOOK_PAGE} "
            f"(#{name.lower()})",
        )
        unknown = set(re.findall(r"\ballowlist_sync_\w+", rule.get("expr", ""))) - METRICS
        checks.expect(not unknown, f"{where}: {name} uses only exported metrics {unknown or ''}")
    stale = rules.get("AllowlistSyncStale", {})
    expr = " ".join(stale.get("expr", "").split())
    checks.expect(
        "time() - allowlist_sync_last_success_timestamp_seconds > 8 * 86400" in expr
        and "absent_over_time(allowlist_sync_last_success_timestamp_seconds[9d])" in expr
        and stale.get("for") == "30m",
        f"{where}: AllowlistSyncStale: no success for 8 days, or no series for 9, for 30m",
    )


def check_monitoring(checks: Checks, repo: Path, kubectl: str, versions: list[str]) -> None:
    root = repo / "deploy" / "monitoring"
    rules_file = root / "rules.yaml"
    operator = root / "prometheus-operator"
    rules = yaml.safe_load(rules_file.read_text())
    where = str(rules_file.relative_to(repo))
    check_rule_groups(checks, where, rules)
    check_alerts(checks, where, rules, repo)
    checks.expect(
        (root / "rules.test.yaml").is_file(), f"{where}: promtool unit tests in rules.test.yaml"
    )
    generated = operator / "prometheusrule.yaml"
    checks.expect(
        generated.is_file()
        and generated.read_text() == prometheusrule_text(rules_file.read_text()),
        f"{generated.relative_to(repo)} is generated from rules.yaml (rewrite it: "
        "scripts/check_deploy.py --write-prometheusrule)",
    )
    check_kustomization_paths(checks, operator, repo)
    where = str(operator.relative_to(repo))
    try:
        docs = load_docs(render(kubectl, operator))
    except RuntimeError as exc:
        checks.fail(f"{where}: kubectl kustomize: {exc}")
        return
    validate_objects(checks, docs, f"{where} (rendered)", versions)
    rendered = find(docs, "PrometheusRule")
    if checks.expect(
        len(docs) == len(rendered) == 1
        and rendered[0]["metadata"].get("namespace")
        == MONITORING_NAMESPACE["kubernetes.io/metadata.name"],
        f"{where}: renders one PrometheusRule, in the monitoring namespace",
    ):
        checks.expect(
            rendered[0]["spec"] == rules,
            f"{where}: the PrometheusRule holds exactly the groups of deploy/monitoring/rules.yaml",
        )


def compose_config(
    checks: Checks, src: Path, compose_bin: str, file: str
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """`docker compose config` of deploy/compose/FILE: the whole config and its one service."""
    where = f"deploy/compose/{file}"
    with tempfile.TemporaryDirectory() as tmp:
        # A copy, so the required env_file can come from .env.example without touching the tree.
        project = Path(tmp) / "compose"
        shutil.copytree(src, project)
        shutil.copy(project / ".env.example", project / ".env")
        result = subprocess.run(
            [compose_bin, "--project-directory", str(project), "-f", str(project / file),
             "config", "--format", "json"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
    if not checks.expect(
        result.returncode == 0, f"{where}: docker compose config {result.stderr.strip()}"
    ):
        return None
    config = json.loads(result.stdout)
    services = config.get("services", {})
    if not checks.expect(len(services) == 1, f"{where}: one service"):
        return None
    (svc,) = services.values()
    return config, svc


def check_compose_service(
    checks: Checks, where: str, svc: dict[str, Any], image: dict[str, Any]
) -> None:
    """The promises every compose service keeps: serve, hardened, cache volume, healthcheck."""
    checks.expect(svc.get("command") == ["serve"], f"{where}: runs serve")
    checks.expect(svc.get("read_only") is True, f"{where}: read_only root filesystem")
    checks.expect(svc.get("restart") == "unless-stopped", f"{where}: restart unless-stopped")
    checks.expect(
        svc.get("user") == f"{image.get('uid')}:{image.get('uid')}",
        f"{where}: runs as the image's uid:gid",
    )
    targets = {v.get("target") for v in svc.get("volumes", [])}
    tmpfs = [t.split(":")[0] for t in svc.get("tmpfs", [])]
    checks.expect(
        image.get("cache_dir") in targets and TMP_DIR in tmpfs,
        f"{where}: volume on the cache dir, tmpfs on /tmp",
    )
    checks.expect(
        svc.get("healthcheck", {}).get("test") == ["CMD", *image.get("healthcheck", [])],
        f"{where}: healthcheck is the image's HEALTHCHECK",
    )
    checks.expect(
        svc.get("cap_drop") == ["ALL"] and "no-new-privileges:true" in svc.get("security_opt", []),
        f"{where}: all capabilities dropped, no-new-privileges",
    )
    check_setting_names(checks, where, set(svc.get("environment", {})), image["settings"])


def check_compose_fleet(
    checks: Checks, repo: Path, compose_bin: str, image: dict[str, Any]
) -> None:
    """compose.fleet.yaml: serve over a mounted config file, one token file per target."""
    src = repo / "deploy" / "compose"
    where = "deploy/compose/compose.fleet.yaml"
    found = compose_config(checks, src, compose_bin, "compose.fleet.yaml")
    if found is None:
        return
    config, svc = found
    check_compose_service(checks, where, svc, image)
    environment = {k: str(v) for k, v in svc.get("environment", {}).items()}
    ignored = (src / ".gitignore").read_text().split() if (src / ".gitignore").is_file() else []
    binds = [v for v in svc.get("volumes", []) if v.get("type") == "bind"]
    checks.expect(
        not svc.get("secrets") and not config.get("secrets"),
        f"{where}: no compose secrets (the tokens are the read-only tokens directory)",
    )
    facts = FleetFacts(image["target_names"], image.get("project_python"), env=environment)
    path = environment.get(CONFIG_ENV, "")
    mount = next((v for v in binds if v.get("target") == path), {})
    source = src / Path(mount.get("source", "/nonexistent")).name
    if not checks.expect(
        posixpath.isabs(path) and mount.get("read_only") is True and source.is_file(),
        f"{where}: {CONFIG_ENV} {path!r} is a file beside it, bind-mounted read-only",
    ):
        return
    for bind in binds:
        name = Path(bind.get("source", "")).name
        if bind is mount or not (name in ignored or f"{name}/" in ignored):
            continue
        if checks.expect(
            bind.get("read_only") is True, f"{where}: {name}/ (kept out of git) mounted read-only"
        ):
            facts.secret_dirs[bind["target"].rstrip("/")] = None
    facts.config_dir = posixpath.dirname(path)
    check_fleet_config(checks, where, source.read_text(), facts)


def check_compose(checks: Checks, repo: Path, compose_bin: str, image: dict[str, Any]) -> None:
    src = repo / "deploy" / "compose"
    found = compose_config(checks, src, compose_bin, "compose.yaml")
    if found is None:
        return
    config, svc = found
    check_compose_service(checks, "deploy/compose", svc, image)
    checks.expect(
        "DBT_CLOUD_ACCOUNT_ID" in svc.get("environment", {}),
        "deploy/compose: settings from env_file",
    )
    # The token: a compose secret (a file, mounted read-only under /run/secrets), never an
    # environment variable, and the file is kept out of git.
    environment = svc.get("environment", {})
    secret_targets = {s.get("target"): s.get("source") for s in svc.get("secrets", [])}
    source = secret_targets.get(environment.get("DBT_CLOUD_TOKEN_FILE"), "")
    secret_file = Path(config.get("secrets", {}).get(source, {}).get("file", ""))
    ignored = (src / ".gitignore").read_text().split() if (src / ".gitignore").is_file() else []
    checks.expect(
        bool(source)
        and str(environment.get("DBT_CLOUD_TOKEN_FILE")).startswith("/run/secrets/")
        and "DBT_CLOUD_TOKEN" not in environment
        and secret_file.parent.name == "compose"
        and secret_file.name in ignored
        and ".env" in ignored,
        "deploy/compose: DBT_CLOUD_TOKEN_FILE is a compose secret under /run/secrets, from a "
        "file .gitignore keeps out (as .env), and no DBT_CLOUD_TOKEN in the environment",
    )
    example = (src / ".env.example").read_text()
    checks.expect(
        re.search(r"^\s*(export\s+)?DBT_CLOUD_TOKEN\s*=", example, re.M) is None,
        "deploy/compose/.env.example: no DBT_CLOUD_TOKEN= (the token is the secret file)",
    )


def pinned(lock: Path) -> dict[str, tuple[str, int]]:
    """name -> (version, number of hashes) of a `--generate-hashes` requirements file."""
    pins: dict[str, tuple[str, int]] = {}
    for entry in re.split(r"\n(?=\S)", lock.read_text()):
        m = re.match(r"([A-Za-z0-9_.-]+)==(\S+)", entry)
        if m:
            pins[canonicalize_name(m[1])] = (m[2], entry.count("--hash=sha256:"))
    return pins


def check_locks(checks: Checks, repo: Path) -> None:
    pyproject = tomllib.loads((repo / "pyproject.toml").read_text())
    for lock_name, requires in (
        ("requirements.lock", pyproject["project"].get("dependencies", [])),
        ("requirements-build.lock", pyproject["build-system"]["requires"]),
    ):
        lock = repo / lock_name
        if not checks.expect(lock.is_file(), f"{lock_name} exists"):
            continue
        pins = pinned(lock)
        checks.expect(all(n > 0 for _, n in pins.values()), f"{lock_name}: every pin has hashes")
        for line in requires:
            req = Requirement(line)
            version, _ = pins.get(canonicalize_name(req.name), ("", 0))
            checks.expect(
                bool(version) and req.specifier.contains(version, prereleases=True),
                f"{lock_name}: {req} pinned ({version or 'missing'}; run scripts/lock.sh)",
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--kubectl", default="kubectl")
    parser.add_argument("--compose", default="docker-compose")
    parser.add_argument("--kubernetes-version", action="append", dest="versions")
    parser.add_argument(
        "--project-python",
        help="a Python with allowlist-sync installed, to read mounted config files with the "
        "program's own read_config (default: the clone's .venv, if any)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="print passed checks too")
    parser.add_argument(
        "--write-prometheusrule",
        action="store_true",
        help="rewrite deploy/monitoring/prometheus-operator/prometheusrule.yaml from rules.yaml",
    )
    args = parser.parse_args()
    versions = args.versions or ["1.30.0", kv.latest_version()]
    if args.write_prometheusrule:
        monitoring = args.repo / "deploy" / "monitoring"
        target = monitoring / "prometheus-operator" / "prometheusrule.yaml"
        target.write_text(prometheusrule_text((monitoring / "rules.yaml").read_text()))
        print(f"wrote {target}")
        return 0

    checks = Checks(verbose=args.verbose)
    image = dockerfile_facts(checks, args.repo / "Dockerfile")
    image["settings"] = setting_names(args.repo / "allowlist_sync" / "config")
    image["target_names"] = target_env_names(args.repo / "allowlist_sync" / "config")
    venv_python = args.repo / ".venv" / "bin" / "python"
    image["project_python"] = args.project_python or (
        str(venv_python) if venv_python.is_file() else None
    )
    check_kubernetes(checks, args.repo, args.kubectl, versions, image)
    check_monitoring(checks, args.repo, args.kubectl, versions)
    check_compose(checks, args.repo, args.compose, image)
    check_compose_fleet(checks, args.repo, args.compose, image)
    check_locks(checks, args.repo)
    print(f"{checks.passed} deploy checks passed, {checks.failures} failed")
    return 1 if checks.failures else 0


if __name__ == "__main__":
    sys.exit(main())
