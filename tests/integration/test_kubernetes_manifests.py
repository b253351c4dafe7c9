"""The Kubernetes manifests of deploy/kubernetes/ (a kustomize base), checked offline.

Every built-in object is validated, strictly (an unknown field fails), against the Kubernetes
JSON schemas that kubernetes-validate ships, for the oldest and the newest version we check.
kubernetes-validate knows no custom resources: KEDA's ScaledObject and TriggerAuthentication are
validated against a schema written here of the fields we use. Then what no schema sees: the
kustomization lists exactly the files, probes and Services point at declared ports, selectors
select the pods they mean, references resolve, KEDA watches the stream and group the code uses
and the lag gauge of every lane that the code exports (its query evaluated by promtool where it is
on PATH), the roles run what compose.yaml runs, their settings parse, and every container is
locked down. `kustomize build` (or `kubectl kustomize`) runs too where one is on PATH, with the
overlay patch that kustomization.yaml documents.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from api.settings import ApiSettings
from consumer.settings import ConsumerSettings
from devstack.roles import REPO_ROOT
from domain.lanes import KINDS
from eventlog.gauges import _FAMILIES as EXPORTED_GAUGES
from eventlog.names import Names
from notifier.settings import NotifierSettings
from projector.settings import ProjectorSettings
from runtime.settings import CommonSettings

BASE = REPO_ROOT / "deploy" / "kubernetes"
KUSTOMIZATION = BASE / "kustomization.yaml"

# unhealthyPodEvictionPolicy (PodDisruptionBudget) is on by default from 1.27; 1.29 is the oldest
# release the base is checked against, the newest is the newest kubernetes-validate knows.
KUBERNETES_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "Job")
COMPONENT = "app.kubernetes.io/component"
KEDA_API = "keda.sh/v1alpha1"
# The role of each workload (its app.kubernetes.io/component label), as compose.yaml names it,
# and the settings it reads (the migration: alembic/env.py reads CommonSettings).
ROLES = {
    "api": ("api", ApiSettings),
    "consumer": ("consumer", ConsumerSettings),
    "projector": ("projector", ProjectorSettings),
    "notifier": ("notifier", NotifierSettings),
    "migration": ("migrate", CommonSettings),
}
# The setting that says where each serving role listens (the migration serves nothing).
LISTENS_ON = {
    "api": "api_port",
    "consumer": "metrics_port",
    "projector": "metrics_port",
    "notifier": "metrics_port",
}
POD_NAME = "inferflow-consumer-5d8f7c9b4-x2k7q"  # what a fieldRef to metadata.name gives
# The gauge of the workers group's lag (eventlog/gauges.py), which the projector serves.
LAG_GAUGE = "inferflow_group_lag"

Object = dict[str, Any]


# ---------------------------------------------------------------- loading


@functools.cache
def kustomization() -> Object:
    return yaml.safe_load(KUSTOMIZATION.read_text())


@functools.cache
def objects_by_file() -> dict[str, list[Object]]:
    """The objects of every YAML file the kustomization lists as a resource (a listed file that
    is missing fails the listing test, not the collection)."""
    return {
        name: [doc for doc in yaml.safe_load_all((BASE / name).read_text()) if doc]
        for name in kustomization()["resources"]
        if (BASE / name).is_file()
    }


def objects() -> list[Object]:
    return [obj for docs in objects_by_file().values() for obj in docs]


def ident(obj: Object) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def of_kind(*kinds: str) -> list[Object]:
    return [obj for obj in objects() if obj["kind"] in kinds]


def one(kind: str, name: str) -> Object:
    found = [obj for obj in of_kind(kind) if obj["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} objects in {BASE}"
    return found[0]


def by_component(component: str) -> Object:
    found = [w for w in of_kind(*WORKLOAD_KINDS) if pod_labels(w).get(COMPONENT) == component]
    assert len(found) == 1, f"{len(found)} workloads of component {component}"
    return found[0]


def pod_spec(workload: Object) -> Object:
    return workload["spec"]["template"]["spec"]


def pod_labels(workload: Object) -> dict[str, str]:
    return workload["spec"]["template"]["metadata"].get("labels", {})


def containers(workload: Object) -> list[Object]:
    spec = pod_spec(workload)
    return spec.get("initContainers", []) + spec["containers"]


def declared_ports(container: Object) -> set[str | int]:
    ports = container.get("ports", [])
    return {p["containerPort"] for p in ports} | {p["name"] for p in ports if "name" in p}


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and selector.items() <= labels.items()


def secret_data(name: str) -> dict[str, str]:
    secret = one("Secret", name)
    return {**secret.get("data", {}), **secret.get("stringData", {})}


def container_env(container: Object) -> dict[str, str]:
    """The environment the container starts with: envFrom, then env, references resolved."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(one("ConfigMap", source["configMapRef"]["name"])["data"])
        else:
            env.update(secret_data(source["secretRef"]["name"]))
    for var in container.get("env", []):
        ref = var.get("valueFrom", {})
        if "value" in var:
            env[var["name"]] = var["value"]
        elif "secretKeyRef" in ref:
            env[var["name"]] = secret_data(ref["secretKeyRef"]["name"])[ref["secretKeyRef"]["key"]]
        elif "configMapKeyRef" in ref:
            data = one("ConfigMap", ref["configMapKeyRef"]["name"])["data"]
            env[var["name"]] = data[ref["configMapKeyRef"]["key"]]
        elif ref.get("fieldRef", {}).get("fieldPath") == "metadata.name":
            env[var["name"]] = POD_NAME
        else:
            pytest.fail(f"{container['name']}: {var['name']} has a source this test cannot read")
    return env


def role_settings(settings_class: type[CommonSettings], env: dict[str, str]) -> CommonSettings:
    """The role's settings from `env` alone, not from this process's environment."""

    class FromManifest(settings_class):  # type: ignore[valid-type, misc]
        @classmethod
        def settings_customise_sources(cls, settings_cls, init_settings, **_sources):
            return (init_settings,)

    fields = settings_class.model_fields
    return FromManifest(**{k.lower(): v for k, v in env.items() if k.lower() in fields})


# ---------------------------------------------------------------- the files


def test_the_kustomization_lists_every_file_and_only_files_that_exist():
    listed = set(kustomization()["resources"]) | set(kustomization().get("configurations", []))
    on_disk = {path.name for path in BASE.iterdir()} - {KUSTOMIZATION.name}
    assert listed == on_disk
    assert all(not Path(name).is_absolute() and "/" not in name for name in listed)


def test_every_resource_file_holds_one_object_of_a_unique_kind_and_name():
    for name, docs in objects_by_file().items():
        assert len(docs) == 1, f"{name}: {len(docs)} objects"
    idents = [ident(obj) for obj in objects()]
    assert len(idents) == len(set(idents))
    for obj in objects():
        # Service names must be DNS labels; the same rule for all keeps them alike.
        assert re.fullmatch(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?", obj["metadata"]["name"])
        assert obj["metadata"]["labels"]["app.kubernetes.io/part-of"] == "inferflow"
        assert "namespace" not in obj["metadata"], "the namespace is the user's choice"


# ---------------------------------------------------------------- schemas

BUILTIN = [obj for obj in objects() if not obj["apiVersion"].startswith("keda.sh/")]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("obj", BUILTIN, ids=ident)
def test_each_builtin_object_matches_the_kubernetes_schema(obj: Object, version: str):
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = ".".join(str(part) for part in exc.path)
        problem = f"{ident(obj)} on Kubernetes {version}: {path}: {exc.message}"
    else:
        return
    pytest.fail(problem, pytrace=False)  # outside `except`: the error's text is the whole schema


_NAME = {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"}
_STRINGS = {"type": "object", "additionalProperties": {"type": "string"}}
_COUNT = {"type": "string", "pattern": r"^[0-9]+$"}  # KEDA's trigger metadata: strings only
_NUMBER = {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?$"}
_BOOL = {"enum": ["true", "false"]}


def _keda_object(kind: str, spec: Object) -> Object:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": KEDA_API},
            "kind": {"const": kind},
            "metadata": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name"],
                "properties": {"name": _NAME, "labels": _STRINGS, "annotations": _STRINGS},
            },
            "spec": spec,
        },
    }


def _closed(required: list[str], **properties: Object) -> Object:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": required,
        "properties": properties,
    }


_INT = {"type": "integer", "minimum": 0}
# The redis-streams trigger's metadata (https://keda.sh/docs/latest/scalers/redis-streams/);
# lagCount is the Redis 7 consumer-group lag, and needs activationLagCount beside it.
REDIS_STREAMS_METADATA = _closed(
    ["stream", "consumerGroup", "lagCount", "activationLagCount"],
    stream={"type": "string", "minLength": 1},
    consumerGroup={"type": "string", "minLength": 1},
    lagCount=_COUNT,
    activationLagCount=_COUNT,
    pendingEntriesCount=_COUNT,
    streamLength=_COUNT,
    databaseIndex=_COUNT,
    address={"type": "string"},
    addressFromEnv={"type": "string"},
    host={"type": "string"},
    hostFromEnv={"type": "string"},
    port=_COUNT,
    portFromEnv={"type": "string"},
    usernameFromEnv={"type": "string"},
    passwordFromEnv={"type": "string"},
    enableTLS=_BOOL,
    unsafeSsl=_BOOL,
)
# The prometheus trigger's metadata (https://keda.sh/docs/latest/scalers/prometheus/); the
# thresholds may be fractions. Without metricName and cortexOrgID, which KEDA 2.10 deprecated.
_AUTH_MODE = "(basic|bearer|tls|custom)"
PROMETHEUS_METADATA = _closed(
    ["serverAddress", "query", "threshold", "activationThreshold"],
    serverAddress={"type": "string", "pattern": r"^https?://[^/\s]+(/\S*)?$"},
    query={"type": "string", "minLength": 1},
    threshold=_NUMBER,
    activationThreshold=_NUMBER,
    namespace={"type": "string"},
    customHeaders={"type": "string"},
    queryParameters={"type": "string"},
    ignoreNullValues=_BOOL,
    unsafeSsl=_BOOL,
    timeout=_COUNT,
    authModes={"type": "string", "pattern": rf"^{_AUTH_MODE}(,{_AUTH_MODE})*$"},
)
KEDA_SCHEMAS = {
    "ScaledObject": _keda_object(
        "ScaledObject",
        _closed(
            ["scaleTargetRef", "triggers"],
            scaleTargetRef=_closed(
                ["name"],
                name=_NAME,
                kind={"type": "string"},
                apiVersion={"type": "string"},
                envSourceContainerName={"type": "string"},
            ),
            minReplicaCount=_INT,
            maxReplicaCount={"type": "integer", "minimum": 1},
            pollingInterval={"type": "integer", "minimum": 1},
            cooldownPeriod=_INT,
            idleReplicaCount=_INT,
            fallback=_closed(
                ["failureThreshold", "replicas"],
                failureThreshold={"type": "integer", "minimum": 1},
                replicas={"type": "integer", "minimum": 1},
            ),
            triggers={
                "type": "array",
                "minItems": 1,
                "items": {
                    "allOf": [
                        _closed(
                            ["type", "metadata"],
                            type={"type": "string"},
                            name={"type": "string"},
                            metadata=_STRINGS,
                            metricType={"enum": ["AverageValue", "Value"]},
                            authenticationRef=_closed(
                                ["name"],
                                name=_NAME,
                                kind={"enum": ["TriggerAuthentication"]},
                            ),
                        ),
                        {
                            "if": {"properties": {"type": {"const": "redis-streams"}}},
                            "then": {"properties": {"metadata": REDIS_STREAMS_METADATA}},
                        },
                        {
                            "if": {"properties": {"type": {"const": "prometheus"}}},
                            "then": {"properties": {"metadata": PROMETHEUS_METADATA}},
                        },
                    ]
                },
            },
        ),
    ),
    "TriggerAuthentication": _keda_object(
        "TriggerAuthentication",
        _closed(
            ["secretTargetRef"],
            secretTargetRef={
                "type": "array",
                "minItems": 1,
                "items": _closed(
                    ["parameter", "name", "key"],
                    # What the Redis scalers read from a TriggerAuthentication.
                    parameter={"enum": ["address", "host", "port", "username", "password"]},
                    name=_NAME,
                    key={"type": "string", "minLength": 1},
                ),
            },
        ),
    ),
}
KEDA = [obj for obj in objects() if obj["apiVersion"].startswith("keda.sh/")]


@pytest.mark.parametrize("obj", KEDA, ids=ident)
def test_each_keda_object_matches_the_schema_of_the_fields_we_use(obj: Object):
    assert obj["kind"] in KEDA_SCHEMAS, f"no schema here for {ident(obj)}"
    schema = KEDA_SCHEMAS[obj["kind"]]
    jsonschema.Draft202012Validator.check_schema(schema)
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(obj), key=str)
    assert not errors, "\n".join(
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in errors
    )


def test_every_object_is_checked_by_one_of_the_schemas():
    assert {obj["kind"] for obj in KEDA} == set(KEDA_SCHEMAS)
    assert len(BUILTIN) + len(KEDA) == len(objects())


# ---------------------------------------------------------------- ports and probes


def test_every_probe_points_at_a_port_its_container_declares():
    for workload in of_kind(*WORKLOAD_KINDS):
        for container in containers(workload):
            ports = declared_ports(container)
            for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
                probe = container.get(kind)
                if probe is None:
                    continue
                (handler,) = (probe[h] for h in ("httpGet", "tcpSocket", "grpc") if h in probe)
                assert handler["port"] in ports, f"{ident(workload)} {container['name']} {kind}"


def test_every_long_running_container_has_readiness_and_liveness_probes():
    for workload in of_kind("Deployment", "StatefulSet"):
        for container in pod_spec(workload)["containers"]:
            assert "readinessProbe" in container, ident(workload)
            assert "livenessProbe" in container, ident(workload)
    api = pod_spec(by_component("api"))["containers"][0]
    assert api["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert api["livenessProbe"]["httpGet"]["path"] == "/health"


def test_the_roles_listen_where_their_ports_and_scrape_annotations_say():
    for component, (_, settings_class) in ROLES.items():
        workload = by_component(component)
        (container,) = pod_spec(workload)["containers"]
        settings = role_settings(settings_class, container_env(container))
        if component not in LISTENS_ON:
            assert not container.get("ports"), f"the {component} serves nothing"
            continue
        port = getattr(settings, LISTENS_ON[component])
        assert {p["containerPort"] for p in container["ports"]} == {port}, component
        if component == "api":  # the default, 127.0.0.1, is unreachable from the kubelet
            assert settings.api_host in ("0.0.0.0", "::")
        annotations = workload["spec"]["template"]["metadata"].get("annotations", {})
        assert int(annotations["prometheus.io/port"]) == port, component


# ---------------------------------------------------------------- labels and selectors


def test_each_workload_selects_its_own_pods_and_only_those():
    for workload in of_kind("Deployment", "StatefulSet"):
        selector = workload["spec"]["selector"]["matchLabels"]
        matched = [w for w in of_kind(*WORKLOAD_KINDS) if selects(selector, pod_labels(w))]
        assert matched == [workload], ident(workload)
        for spread in pod_spec(workload).get("topologySpreadConstraints", []):
            assert spread["labelSelector"]["matchLabels"] == selector


def test_each_service_selects_one_workload_and_targets_its_declared_ports():
    for service in of_kind("Service"):
        selector = service["spec"]["selector"]
        (workload,) = (w for w in of_kind(*WORKLOAD_KINDS) if selects(selector, pod_labels(w)))
        (container,) = pod_spec(workload)["containers"]
        for port in service["spec"]["ports"]:
            assert port.get("targetPort", port["port"]) in declared_ports(container)


def test_each_disruption_budget_covers_one_workload_and_never_blocks_a_drain():
    budgets = of_kind("PodDisruptionBudget")
    covered = set()
    for budget in budgets:
        selector = budget["spec"]["selector"]["matchLabels"]
        (workload,) = (w for w in of_kind(*WORKLOAD_KINDS) if selects(selector, pod_labels(w)))
        assert selector == workload["spec"]["selector"]["matchLabels"]
        # minAvailable equal to the replica count would forbid every eviction.
        assert budget["spec"].get("maxUnavailable", 0) >= 1, ident(budget)
        covered.add(ident(workload))
    assert covered == {ident(by_component(c)) for c in ("api", "consumer", "notifier")}


# ---------------------------------------------------------------- scaling


def test_the_api_autoscaler_targets_the_api_deployment_on_cpu_from_two_replicas():
    (hpa,) = of_kind("HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    api = by_component("api")
    assert (target["apiVersion"], target["kind"], target["name"]) == (
        api["apiVersion"],
        api["kind"],
        api["metadata"]["name"],
    )
    assert 2 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert 0 < metric["resource"]["target"]["averageUtilization"] < 100
    for container in pod_spec(api)["containers"]:  # utilization is relative to the request
        assert "cpu" in container["resources"]["requests"]


def test_the_scaled_object_targets_the_consumer_deployment():
    (scaled,) = of_kind("ScaledObject")
    target = scaled["spec"]["scaleTargetRef"]
    consumer = by_component("consumer")
    assert target.get("kind", "Deployment") == consumer["kind"] == "Deployment"
    assert target.get("apiVersion", "apps/v1") == consumer["apiVersion"]
    assert target["name"] == consumer["metadata"]["name"]
    assert 1 <= scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"]


def test_autoscaled_deployments_leave_the_replica_count_to_the_autoscaler():
    for workload in (by_component("api"), by_component("consumer")):
        assert "replicas" not in workload["spec"], f"{ident(workload)}: each apply would reset it"


def triggers(kind: str) -> list[Object]:
    (scaled,) = of_kind("ScaledObject")
    return [t for t in scaled["spec"]["triggers"] if t["type"] == kind]


def test_the_consumers_scale_on_prometheus_and_on_redis_streams_only():
    (scaled,) = of_kind("ScaledObject")
    kinds = [t["type"] for t in scaled["spec"]["triggers"]]
    # One query over every lane of every partition, first (the overlay patch that
    # kustomization.yaml shows names it by its index); then a trigger per partition.
    assert kinds[0] == "prometheus"
    assert kinds[1:] and set(kinds[1:]) == {"redis-streams"}


def test_the_keda_triggers_watch_each_partition_and_the_group_the_code_uses():
    # The streams the consumers are configured for, one trigger each (the default lanes).
    (container,) = pod_spec(by_component("consumer"))["containers"]
    settings = role_settings(ConsumerSettings, container_env(container))
    streams = [t["metadata"]["stream"] for t in triggers("redis-streams")]
    assert streams == [settings.names.events(p) for p in range(settings.partitions)]
    assert streams[0] == Names().events(0)
    for trigger in triggers("redis-streams"):
        metadata = trigger["metadata"]
        assert metadata["consumerGroup"] == Names().workers_group
        assert int(metadata["lagCount"]) >= 1
        assert int(metadata["activationLagCount"]) >= 0


def test_keda_reads_the_redis_the_consumers_use():
    (container,) = pod_spec(by_component("consumer"))["containers"]
    url = container_env(container)["REDIS_URL"]
    found = re.fullmatch(r"rediss?://(?:[^:@/]*(?::([^@/]*))?@)?([^/]+)(?:/(\d+))?", url)
    assert found, url
    password, address, database = found.groups()
    assert triggers("redis-streams")
    for trigger in triggers("redis-streams"):
        auth = one("TriggerAuthentication", trigger["authenticationRef"]["name"])
        refs = {ref["parameter"]: ref for ref in auth["spec"]["secretTargetRef"]}
        assert "address" in refs
        values = {p: secret_data(ref["name"])[ref["key"]] for p, ref in refs.items()}
        assert values["address"] == address
        assert values.get("password", "") == (password or "")
        assert trigger["metadata"].get("databaseIndex", "0") == (database or "0")


def prometheus_query() -> str:
    (trigger,) = triggers("prometheus")
    return trigger["metadata"]["query"]


def encloses_everything(inner: str) -> bool:
    """Whether `sum(<inner>)` is one call: no parenthesis of `inner` closes the sum's."""
    depth = 0
    for char in inner:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0


def test_the_prometheus_trigger_sums_the_lag_gauge_of_every_lane_the_code_exports():
    exported = {name: labels for name, _, labels in EXPORTED_GAUGES}
    assert LAG_GAUGE in exported, "the gauge the ScaledObject queries is no longer exported"
    # Each lane's gauge is per partition (every gauge) and kind; `group` is not a lane.
    lane_labels = {"partition", *exported[LAG_GAUGE]} - {"group"}
    assert lane_labels == {"partition", "kind"}
    query = prometheus_query()
    assert set(re.findall(r"inferflow_\w+", query)) == {LAG_GAUGE}
    # One number for the whole log: a sum around everything, grouped by nothing.
    outer = re.fullmatch(r"\s*sum\s*\((.*)\)\s*", query, re.S)
    assert outer and encloses_everything(outer.group(1)), query
    # The workers' lag, and nothing that drops a partition or a lane.
    selectors = re.findall(rf"{LAG_GAUGE}\s*(\{{[^}}]*\}})?", query)
    assert selectors and all(selectors), f"{LAG_GAUGE} without a group matcher: {query}"
    for selector in selectors:
        matchers = re.findall(r'(\w+)\s*(=~|!=|!~|=)\s*"([^"]*)"', selector)
        assert ("group", "=", Names().workers_group) in matchers, selector
        assert not {label for label, _, _ in matchers} & lane_labels, selector
    # A `by` may fold copies of a series (scraped twice), never lanes into one another.
    for clause, labels in re.findall(r"\b(by|without)\s*\(([^)]*)\)", query):
        named = {label.strip() for label in labels.split(",") if label.strip()}
        assert lane_labels <= named if clause == "by" else not named & lane_labels, query


def test_the_prometheus_trigger_targets_the_same_lag_per_consumer_as_redis_streams():
    (trigger,) = triggers("prometheus")
    metadata = trigger["metadata"]
    # AverageValue (the default) divides the lag among the consumers, as lagCount does; the
    # fallback works only with it.
    assert trigger.get("metricType", "AverageValue") == "AverageValue"
    assert float(metadata["threshold"]) > 0
    assert 0 <= float(metadata["activationThreshold"]) < float(metadata["threshold"])
    for redis_trigger in triggers("redis-streams"):
        assert float(metadata["threshold"]) == int(redis_trigger["metadata"]["lagCount"])
        assert float(metadata["activationThreshold"]) == int(
            redis_trigger["metadata"]["activationLagCount"]
        )
    # Not the redis-streams triggers' Redis credentials.
    assert "authenticationRef" not in trigger


def test_prometheus_scrapes_the_projector_which_serves_the_lag_of_every_lane():
    projector = by_component("projector")
    (container,) = pod_spec(projector)["containers"]
    port = role_settings(ProjectorSettings, container_env(container)).metrics_port
    annotations = projector["spec"]["template"]["metadata"].get("annotations", {})
    assert annotations.get("prometheus.io/scrape") == "true"
    assert annotations.get("prometheus.io/path", "/metrics") == "/metrics"
    assert int(annotations["prometheus.io/port"]) == port
    # What a ServiceMonitor selects instead; not annotated, or it would be scraped twice.
    service = one("Service", projector["spec"]["serviceName"])
    (metrics,) = (p for p in service["spec"]["ports"] if p.get("name") == "metrics")
    (declared,) = (p for p in container["ports"] if p["containerPort"] == port)
    assert metrics.get("targetPort", metrics["port"]) in (port, declared.get("name"))
    assert not any(
        key.startswith("prometheus.io/") for key in service["metadata"].get("annotations", {})
    )


def documented_overlay_patches() -> list[Object]:
    """The `patches` that kustomization.yaml's comment shows an overlay (lines under `#   `)."""
    lines = [line[4:] for line in KUSTOMIZATION.read_text().splitlines() if line[:4] == "#   "]
    assert lines, "kustomization.yaml shows no overlay patch"
    return yaml.safe_load("\n".join(lines))["patches"]


def test_the_documented_overlay_patch_sets_the_prometheus_address():
    (scaled,) = of_kind("ScaledObject")
    (patch,) = documented_overlay_patches()
    assert patch["target"] == {"kind": "ScaledObject", "name": scaled["metadata"]["name"]}
    (operation,) = yaml.safe_load(patch["patch"])
    assert operation["op"] == "replace"
    *parents, field, key = operation["path"].strip("/").split("/")
    assert (field, key) == ("metadata", "serverAddress"), operation["path"]
    trigger: Any = scaled
    for part in parents:
        trigger = trigger[int(part)] if isinstance(trigger, list) else trigger[part]
    assert trigger["type"] == "prometheus", operation["path"]
    assert trigger["metadata"][key] != operation["value"], "the example is the default"


# ---------------------------------------------------------------- the roles


def test_each_role_runs_what_compose_runs():
    services = yaml.safe_load((REPO_ROOT / "compose.yaml").read_text())["services"]
    for component, (service, _) in ROLES.items():
        (container,) = pod_spec(by_component(component))["containers"]
        assert container["command"] == services[service]["command"], component


def test_each_role_gets_settings_it_reads_and_that_parse():
    config_keys = set()
    for config in of_kind("ConfigMap"):
        config_keys |= set(config["data"])
    for component, (_, settings_class) in ROLES.items():
        (container,) = pod_spec(by_component(component))["containers"]
        env = container_env(container)
        role_settings(settings_class, env)  # raises on a value the role would refuse
        unknown = {k for k in env if k.lower() not in settings_class.model_fields}
        assert unknown <= config_keys, f"{component} is given {unknown} it does not read"
    every_field = set().union(*(cls.model_fields for _, cls in ROLES.values()))
    assert {k.lower() for k in config_keys} <= every_field, "a ConfigMap key no role reads"


def test_secrets_go_only_to_the_roles_that_use_them():
    assert {"REDIS_URL", "DATABASE_URL"} <= set(secret_data("inferflow-secrets"))
    for component, wanted in {
        "api": {"REDIS_URL", "DATABASE_URL"},
        "consumer": {"REDIS_URL"},
        "projector": {"REDIS_URL", "DATABASE_URL"},
        "notifier": {"REDIS_URL", "DATABASE_URL"},
        "migration": {"DATABASE_URL"},
    }.items():
        (container,) = pod_spec(by_component(component))["containers"]
        assert not any("secretRef" in source for source in container.get("envFrom", []))
        given = {
            var["name"]
            for var in container.get("env", [])
            if "secretKeyRef" in var.get("valueFrom", {})
        }
        assert given == wanted, component


def test_consumers_are_named_after_their_pod_and_have_time_to_hand_back():
    consumer = by_component("consumer")
    (container,) = pod_spec(consumer)["containers"]
    (name,) = (var for var in container["env"] if var["name"] == "CONSUMER_NAME")
    assert name["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert role_settings(ConsumerSettings, container_env(container)).consumer_name == POD_NAME
    assert pod_spec(consumer)["terminationGracePeriodSeconds"] >= 15


def test_the_projector_is_one_stateful_replica_behind_a_headless_service():
    projector = by_component("projector")
    assert projector["kind"] == "StatefulSet"
    assert projector["spec"]["replicas"] == 1
    service = one("Service", projector["spec"]["serviceName"])
    assert service["spec"]["clusterIP"] == "None"
    assert selects(service["spec"]["selector"], pod_labels(projector))


def test_the_migration_runs_once_as_a_job_that_retries():
    job = by_component("migration")
    assert job["kind"] == "Job"
    assert pod_spec(job)["restartPolicy"] in ("Never", "OnFailure")
    assert job["spec"]["backoffLimit"] >= 1


# ---------------------------------------------------------------- images and security


def test_every_container_runs_the_image_kustomize_replaces():
    (image,) = kustomization()["images"]
    assert f"{image['newName']}:{image['newTag']}" == "inferflow:local"
    for workload in of_kind(*WORKLOAD_KINDS):
        for container in containers(workload):
            assert container["image"].split(":")[0] == image["name"], ident(workload)
            assert container["image"] == "inferflow:local"


def test_every_container_runs_locked_down_as_the_image_user():
    image_user = re.search(r"^USER\s+(\d+)\s*$", (REPO_ROOT / "Dockerfile").read_text(), re.M)
    assert image_user
    uid = int(image_user.group(1))
    for workload in of_kind(*WORKLOAD_KINDS):
        spec = pod_spec(workload)
        assert spec.get("automountServiceAccountToken") is False, ident(workload)
        for container in containers(workload):
            where = f"{ident(workload)} {container['name']}"
            context = {**spec.get("securityContext", {}), **container.get("securityContext", {})}
            assert context.get("runAsNonRoot") is True, where
            assert context.get("runAsUser") == uid, where
            assert context.get("allowPrivilegeEscalation") is False, where
            assert context.get("readOnlyRootFilesystem") is True, where
            assert context.get("capabilities", {}).get("drop") == ["ALL"], where
            assert not context.get("capabilities", {}).get("add"), where
            assert context.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
            resources = container.get("resources", {})
            assert {"cpu", "memory"} <= set(resources.get("requests", {})), where
            assert {"cpu", "memory"} <= set(resources.get("limits", {})), where


def test_the_api_has_a_writable_tmp_for_its_metrics_directory():
    api = by_component("api")
    (container,) = pod_spec(api)["containers"]
    (mount,) = (m for m in container["volumeMounts"] if m["mountPath"] == "/tmp")
    (volume,) = (v for v in pod_spec(api)["volumes"] if v["name"] == mount["name"])
    assert "emptyDir" in volume


def test_every_volume_mount_and_config_reference_resolves():
    for workload in of_kind(*WORKLOAD_KINDS):
        volumes = {v["name"] for v in pod_spec(workload).get("volumes", [])}
        for container in containers(workload):
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in volumes, ident(workload)
            container_env(container)  # a missing ConfigMap, Secret or key raises here


# ---------------------------------------------------------------- kustomize itself

KUSTOMIZE = shutil.which("kustomize")
KUBECTL = shutil.which("kubectl")
PROMTOOL = shutil.which("promtool")
needs_kustomize = pytest.mark.skipif(
    not (KUSTOMIZE or KUBECTL), reason="neither kustomize nor kubectl on PATH"
)


def kustomize_build(directory: Path) -> list[Object]:
    command = [KUSTOMIZE, "build"] if KUSTOMIZE else [KUBECTL, "kustomize"]
    result = subprocess.run(
        [*command, str(directory)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@needs_kustomize
def test_kustomize_builds_the_base_into_the_same_objects():
    built = kustomize_build(BASE)
    assert sorted(map(ident, built)) == sorted(map(ident, objects()))
    (image,) = kustomization()["images"]
    images = {
        container["image"]
        for workload in built
        if workload["kind"] in WORKLOAD_KINDS
        for container in containers(workload)
    }
    assert images == {f"{image['newName']}:{image['newTag']}"}


@needs_kustomize
def test_an_overlay_with_the_documented_patch_changes_the_prometheus_address_only(
    tmp_path: Path,
):
    (patch,) = documented_overlay_patches()
    (operation,) = yaml.safe_load(patch["patch"])
    overlay = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        # kustomize takes no absolute path to a base.
        "resources": [os.path.relpath(BASE, tmp_path)],
        "patches": [patch],
    }
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(overlay))
    built = {ident(obj): obj for obj in kustomize_build(tmp_path)}
    base = {ident(obj): obj for obj in kustomize_build(BASE)}
    (scaled,) = (obj for obj in built.values() if obj["kind"] == "ScaledObject")
    prometheus = [t for t in scaled["spec"]["triggers"] if t["type"] == "prometheus"]
    assert [t["metadata"]["serverAddress"] for t in prometheus] == [operation["value"]]
    prometheus[0]["metadata"]["serverAddress"] = triggers("prometheus")[0]["metadata"][
        "serverAddress"
    ]
    assert built == base


# ---------------------------------------------------------------- the query itself


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not found (apt-get install prometheus)")
def test_the_prometheus_query_counts_each_lane_of_each_partition_once(tmp_path: Path):
    """The trigger's query, evaluated by promtool on the gauges of two projector replicas (each
    serves every partition's), with another group's lag beside them."""
    workers = Names().workers_group
    series, expected = [], 0
    for partition in range(3):
        for i, kind in enumerate(KINDS):
            lag = 1000 * (partition + 1) + 10 * i  # each lane apart, so a dropped one shows
            expected += lag
            for instance in ("inferflow-projector-0", "inferflow-projector-1"):
                labels = f'instance="{instance}", group="{workers}"'
                labels += f', partition="{partition}", kind="{kind}"'
                series.append({"series": f"{LAG_GAUGE}{{{labels}}}", "values": f"{lag}x5"})
    others = f'{LAG_GAUGE}{{group="other", partition="0", kind="{KINDS[0]}"}}'
    series.append({"series": others, "values": "99999x5"})
    case = {
        "interval": "1m",
        "input_series": series,
        "promql_expr_test": [
            {
                "expr": prometheus_query(),
                "eval_time": "3m",
                "exp_samples": [{"labels": "{}", "value": expected}],
            }
        ],
    }
    path = tmp_path / "keda-query.test.yml"
    path.write_text(yaml.safe_dump({"tests": [case]}))
    result = subprocess.run(
        [PROMTOOL, "test", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
