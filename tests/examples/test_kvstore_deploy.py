"""The deploy files under deploy/kvstore, checked against the code they start.

No Docker or Kubernetes here: the files are parsed, and every setting they pass is fed
to the same `load_settings` the node runs, so a port, a name or a variable that drifts
from the code fails here first.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from examples.kvstore.discovery import advertised_api_addr
from examples.kvstore.settings import OPTIONS, Settings, load_settings
from nodehost.discovery import DnsConfig

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy" / "kvstore"


def port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


# ---------------------------------------------------------------- Procfile


def procfile() -> dict[str, list[str]]:
    processes = {}
    for line in (DEPLOY / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, command = line.partition(":")
            processes[name.strip()] = shlex.split(command)
    return processes


def test_procfile_starts_three_nodes_of_one_cluster() -> None:
    processes = procfile()
    assert len(processes) == 3
    settings = []
    for argv in processes.values():
        assert argv[0] == "example-kvstore"
        settings.append(load_settings(argv[1:], {}))
    assert sorted(s.node_id for s in settings) == [1, 2, 3]
    assert all(s.peers == settings[0].peers for s in settings), "one PEERS for all"
    for s in settings:
        assert s.raft_addr == s.peers[s.node_id] and not s.wants_join
    for field in ("http_addr", "raft_addr", "state_dir"):
        assert len({getattr(s, field) for s in settings}) == 3, f"{field} must differ"


# ---------------------------------------------------------------- Dockerfile


def dockerfile() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_exposes_what_the_node_listens_on() -> None:
    steps = dockerfile()
    env: dict[str, str] = {}
    for word, rest in steps:
        if word == "ENV":
            env.update(dict(pair.split("=", 1) for pair in shlex.split(rest)))
    exposed = {int(p) for word, rest in steps if word == "EXPOSE" for p in rest.split()}
    settings = load_settings([], env)
    assert {port_of(settings.http_addr), port_of(settings.raft_listen)} == exposed
    assert settings.http_addr.startswith("0.0.0.0:") and settings.raft_listen.startswith("0.0.0.0:")
    volumes = [v for word, rest in steps if word == "VOLUME" for v in yaml.safe_load(rest)]
    assert volumes == [settings.state_dir]
    assert ("STOPSIGNAL", "SIGTERM") in steps
    health = next(rest for word, rest in steps if word == "HEALTHCHECK")
    assert "/healthz" in health and "HTTP_ADDR" in health


def test_dockerfile_copies_every_package_and_runs_the_script() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    packages = set(pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"])
    steps = dockerfile()
    copied = {shlex.split(rest)[0] for word, rest in steps if word == "COPY"}
    assert packages <= copied, f"not copied: {packages - copied}"
    for source in copied:
        assert (REPO / source).exists(), source
    entrypoint = next(rest for word, rest in steps if word == "ENTRYPOINT")
    (script,) = yaml.safe_load(entrypoint)
    assert pyproject["project"]["scripts"][script] == "examples.kvstore.main:main"


# ---------------------------------------------------------------- Kubernetes


@pytest.fixture(scope="module")
def manifests() -> dict[str, dict[str, Any]]:
    docs = list(yaml.safe_load_all((DEPLOY / "kubernetes" / "kvstore.yaml").read_text()))
    by_name = {}
    for doc in docs:
        assert {"apiVersion", "kind", "metadata", "spec"} <= set(doc)
        by_name[f"{doc['kind']}/{doc['metadata']['name']}"] = doc
    assert len(by_name) == len(docs), "names are unique per kind"
    return by_name


def container_env(container: dict[str, Any], pod_name: str) -> dict[str, str]:
    """The environment Kubernetes gives the container, $(VAR) references expanded."""
    env: dict[str, str] = {}
    for item in container["env"]:
        if "valueFrom" in item:
            assert item["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
            env[item["name"]] = pod_name
        else:
            env[item["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], item["value"])
    return env


def test_statefulset_is_served_by_a_headless_service(manifests: dict[str, dict[str, Any]]) -> None:
    sts = manifests["StatefulSet/kvstore"]
    headless = manifests[f"Service/{sts['spec']['serviceName']}"]
    labels = sts["spec"]["template"]["metadata"]["labels"]
    assert sts["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True
    ports = {
        p["name"]: p["containerPort"]
        for p in sts["spec"]["template"]["spec"]["containers"][0]["ports"]
    }
    for name, doc in manifests.items():
        if name.startswith("Service/"):
            assert doc["spec"]["selector"].items() <= labels.items()
            for port in doc["spec"]["ports"]:
                assert port["targetPort"] in ports and port["port"] == ports[port["targetPort"]]
    pdb = manifests["PodDisruptionBudget/kvstore"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["maxUnavailable"] < (sts["spec"]["replicas"] + 1) // 2, "keeps a quorum"


def test_every_pod_gets_identical_discovery_settings(
    manifests: dict[str, dict[str, Any]],
) -> None:
    """Pods differ only by name: NODE_ID=auto, DNS discovery on the headless Service,
    bootstrap_expect = the initial replicas, and a removal delay longer than a restart."""
    sts = manifests["StatefulSet/kvstore"]
    service = sts["spec"]["serviceName"]
    pod = sts["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert "command" not in container and "args" not in container, "the image's entrypoint"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    claims = {c["metadata"]["name"] for c in sts["spec"]["volumeClaimTemplates"]}
    replicas = sts["spec"]["replicas"]
    known = {o.env for o in OPTIONS} | {"POD_NAME"}

    def settings_of(ordinal: int) -> Settings:
        env = container_env(container, f"{sts['metadata']['name']}-{ordinal}")
        assert set(env) <= known, f"unknown variables: {set(env) - known}"
        return load_settings([], env)

    for ordinal in range(replicas + 2):  # the initial pods and two added by scaling up
        s = settings_of(ordinal)
        assert s.node_id == 0, "NODE_ID=auto: a new id per volume, never an ordinal"
        assert not s.peers_given and not s.join
        assert s.raft_addr == f"{sts['metadata']['name']}-{ordinal}.{service}:{ports['raft']}"
        assert port_of(s.http_addr) == ports["http"] and port_of(s.raft_listen) == ports["raft"]
        assert s.state_dir in mounts.values()
        assert {n for n, p in mounts.items() if p == s.state_dir} <= claims, "data on a claim"
        disco = s.discovery
        assert disco is not None and disco.mode == "dns"
        assert isinstance(disco.backend, DnsConfig)
        assert disco.backend.name == service and disco.backend.port == ports["http"]
        assert disco.backend.bootstrap_expect == replicas
        assert disco.remove_after > 5 * pod["terminationGracePeriodSeconds"]
        assert advertised_api_addr(s) == f"{sts['metadata']['name']}-{ordinal}.{service}:11000"
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"]["whenScaled"] == "Delete"
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    # A pod waiting for its peers is alive though not ready: liveness asks /discovery.
    assert container["livenessProbe"]["httpGet"] == {"path": "/discovery", "port": "http"}


def test_the_readme_section_lists_every_setting() -> None:
    text = (REPO / "README.md").read_text()
    for option in OPTIONS:
        assert f"`{option.env}`" in text, option.env
        for flag in option.flags:
            assert f"`{flag}`" in text, flag
