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
  health port);
- compose.yaml passes `docker compose config` and has the keys the README relies on;
- requirements.lock pins, with hashes, a version of every dependency pyproject.toml declares.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate.utils as kv
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

TOKEN_PATH = "/var/run/secrets/allowlist-sync/token"  # noqa: S105 (a path, not a token)
SECRET_NAME = "allowlist-sync-token"  # noqa: S105 (a name, not a token)
TMP_DIR = "/tmp"  # noqa: S108 (where the manifests mount an emptyDir/tmpfs, not a temp file)
# dbt platform service tokens look like dbtc_ followed by a long random string.
REAL_TOKEN = re.compile(r"dbtc_[A-Za-z0-9_-]{20,}")


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


def check_pod(checks: Checks, where: str, spec: dict[str, Any], image: dict[str, Any]) -> None:
    """The promises every allowlist-sync pod keeps."""
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
    checks.expect(
        env.get("DBT_CLOUD_TOKEN_FILE") == TOKEN_PATH
        and "DBT_CLOUD_TOKEN" not in env
        and token_mount.get("readOnly") is True
        and token_volume.get("secret", {}).get("secretName") == SECRET_NAME
        and {"key": "token", "path": "token"} in token_volume.get("secret", {}).get("items", []),
        f"{where}: token read from Secret {SECRET_NAME} mounted at {TOKEN_PATH}",
    )
    checks.expect(
        any("configMapRef" in ref for ref in container.get("envFrom", [])),
        f"{where}: settings from a ConfigMap (envFrom)",
    )
    for path in (image["cache_dir"], TMP_DIR):
        volume = volumes.get(mounts.get(path, {}).get("name", ""), {})
        checks.expect("emptyDir" in volume, f"{where}: emptyDir mounted at {path}")
    checks.expect(
        env.get("ALLOWLIST_SYNC_CACHE_DIR", image["cache_dir"]) == image["cache_dir"],
        f"{where}: ALLOWLIST_SYNC_CACHE_DIR is the mounted cache dir",
    )


def check_networkpolicy(checks: Checks, where: str, docs: list[dict[str, Any]]) -> None:
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
    egress_ports = sorted(
        (p.get("protocol", "TCP"), p["port"]) for rule in spec["egress"] for p in rule["ports"]
    )
    checks.expect(
        set(spec["policyTypes"]) == {"Ingress", "Egress"}
        and egress_ports == [("TCP", 53), ("TCP", 443), ("UDP", 53)]
        and all("to" not in rule or rule["to"] for rule in spec["egress"]),
        f"{where}: egress only DNS (53 UDP/TCP) and HTTPS (443)",
    )
    ingress_ports = [p["port"] for rule in spec.get("ingress", []) for p in rule.get("ports", [])]
    want_ingress = [8080] if find(docs, "Deployment") else []
    checks.expect(
        ingress_ports == want_ingress
        and all(rule.get("ports") for rule in spec.get("ingress", [])),
        f"{where}: ingress {'only TCP 8080 (probes, metrics)' if want_ingress else 'none'}",
    )


def check_cronjob(checks: Checks, where: str, cronjob: dict[str, Any], dry_run: bool) -> None:
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
        isinstance(job.get("backoffLimit"), int)
        and isinstance(job.get("activeDeadlineSeconds"), int)
        and pod.get("restartPolicy") == "Never",
        f"{where}: Job backoffLimit, activeDeadlineSeconds, restartPolicy Never",
    )
    args = pod["containers"][0].get("args", [])
    want = ["sync", "--output", "json", *(["--dry-run"] if dry_run else [])]
    checks.expect(args == want, f"{where}: args {args} == {want}")


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

    example = root / "secret.example.yaml"
    checks.expect(example.resolve() not in named, "secret.example.yaml is in no kustomization")
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
                kinds == ["ConfigMap", "CronJob", "Namespace", "NetworkPolicy", "ServiceAccount"],
                f"{where}: renders Namespace, ServiceAccount, ConfigMap, NetworkPolicy, CronJob",
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
        for w in workloads:
            checks.expect(
                w["metadata"].get("namespace") == "allowlist-sync",
                f"{where}: {w['kind']} in namespace allowlist-sync",
            )
            check_pod(checks, f"{where}: {w['kind']}", pod_spec(w), image)
        for cronjob in find(docs, "CronJob"):
            check_cronjob(checks, where, cronjob, dry_run=kdir.name == "dry-run")
        for deployment in find(docs, "Deployment"):
            check_deployment(checks, where, deployment, image.get("health_port", 8080))
        check_networkpolicy(checks, where, docs)


def check_compose(checks: Checks, repo: Path, compose_bin: str, image: dict[str, Any]) -> None:
    src = repo / "deploy" / "compose"
    with tempfile.TemporaryDirectory() as tmp:
        # A copy, so the required env_file can come from .env.example without touching the tree.
        project = Path(tmp) / "compose"
        shutil.copytree(src, project)
        shutil.copy(project / ".env.example", project / ".env")
        result = subprocess.run(
            [compose_bin, "--project-directory", str(project), "-f", str(project / "compose.yaml"),
             "config", "--format", "json"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
    if not checks.expect(
        result.returncode == 0, f"deploy/compose: docker compose config {result.stderr.strip()}"
    ):
        return
    config = json.loads(result.stdout)
    services = config.get("services", {})
    if not checks.expect(len(services) == 1, "deploy/compose: one service"):
        return
    (svc,) = services.values()
    checks.expect(svc.get("command") == ["serve"], "deploy/compose: runs serve")
    checks.expect(svc.get("read_only") is True, "deploy/compose: read_only root filesystem")
    checks.expect(svc.get("restart") == "unless-stopped", "deploy/compose: restart unless-stopped")
    checks.expect(
        svc.get("user") == f"{image.get('uid')}:{image.get('uid')}",
        "deploy/compose: runs as the image's uid:gid",
    )
    checks.expect(
        "DBT_CLOUD_ACCOUNT_ID" in svc.get("environment", {}),
        "deploy/compose: settings from env_file",
    )
    targets = {v.get("target") for v in svc.get("volumes", [])}
    tmpfs = [t.split(":")[0] for t in svc.get("tmpfs", [])]
    checks.expect(
        image.get("cache_dir") in targets and TMP_DIR in tmpfs,
        "deploy/compose: volume on the cache dir, tmpfs on /tmp",
    )
    checks.expect(
        svc.get("healthcheck", {}).get("test") == ["CMD", *image.get("healthcheck", [])],
        "deploy/compose: healthcheck is the image's HEALTHCHECK",
    )
    checks.expect(
        svc.get("cap_drop") == ["ALL"] and "no-new-privileges:true" in svc.get("security_opt", []),
        "deploy/compose: all capabilities dropped, no-new-privileges",
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
    parser.add_argument("-v", "--verbose", action="store_true", help="print passed checks too")
    args = parser.parse_args()
    versions = args.versions or ["1.30.0", kv.latest_version()]

    checks = Checks(verbose=args.verbose)
    image = dockerfile_facts(checks, args.repo / "Dockerfile")
    check_kubernetes(checks, args.repo, args.kubectl, versions, image)
    check_compose(checks, args.repo, args.compose, image)
    check_locks(checks, args.repo)
    print(f"{checks.passed} deploy checks passed, {checks.failures} failed")
    return 1 if checks.failures else 0


if __name__ == "__main__":
    sys.exit(main())
