"""deploy/k8s: the kustomize base and the production overlay render (``kubectl kustomize``, kustomize 5
built into kubectl; no cluster is needed) and every rendered object passes strict schema validation with
kubernetes-validate (bundled schemas, offline) for Kubernetes 1.30; then what the issue asks of them."""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
VERSION = "1.30.0"


def _render(folder: Path) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl (its built-in kustomize renders deploy/k8s) is not on PATH"
    proc = subprocess.run([kubectl, "kustomize", str(folder)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


@pytest.fixture(scope="module", params=["base", "overlays/production"])
def rendered(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return _render(K8S / request.param)


def _by_kind(docs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def _pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    if doc["kind"] == "CronJob":
        spec: dict[str, Any] = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        return spec
    template: dict[str, Any] = doc["spec"]["template"]["spec"]
    return template


def test_every_object_passes_strict_schema_validation(rendered: list[dict[str, Any]]) -> None:
    for doc in rendered:
        kubernetes_validate.validate(doc, VERSION, strict=True)
    broken = copy.deepcopy(next(d for d in rendered if d["kind"] == "Deployment"))
    broken["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):  # the validator does validate
        kubernetes_validate.validate(broken, VERSION, strict=True)


def test_the_objects_the_issue_asks_for(rendered: list[dict[str, Any]]) -> None:
    objects = _by_kind(rendered)
    assert set(objects) >= {
        ("Deployment", "clvdrift-api"),
        ("Deployment", "clvdrift-worker"),
        ("Service", "clvdrift-api"),
        ("HorizontalPodAutoscaler", "clvdrift-api"),
        ("ConfigMap", "clvdrift-config"),
        ("PersistentVolumeClaim", "clvdrift-artifacts"),
        ("CronJob", "clvdrift-monitor"),
        ("PodDisruptionBudget", "clvdrift-api"),
        ("Job", "clvdrift-migrate"),
    }
    assert not [d for d in rendered if d["kind"] == "Secret"], "Secrets are referenced, never defined"
    hpa = objects[("HorizontalPodAutoscaler", "clvdrift-api")]["spec"]["scaleTargetRef"]
    assert (hpa["kind"], hpa["name"]) == ("Deployment", "clvdrift-api")
    monitor = _pod_spec(objects[("CronJob", "clvdrift-monitor")])["containers"][0]
    assert monitor["args"] == ["monitor"]
    assert _pod_spec(objects[("Job", "clvdrift-migrate")])["containers"][0]["args"] == ["migrate"]
    pdb = objects[("PodDisruptionBudget", "clvdrift-api")]["spec"]["selector"]["matchLabels"]
    assert (
        pdb.items()
        <= objects[("Deployment", "clvdrift-api")]["spec"]["template"]["metadata"]["labels"].items()
    )


def test_probes_resources_secret_references_and_non_root(rendered: list[dict[str, Any]]) -> None:
    objects = _by_kind(rendered)
    api = _pod_spec(objects[("Deployment", "clvdrift-api")])["containers"][0]
    assert api["livenessProbe"]["httpGet"]["path"] == "/health"
    assert api["readinessProbe"]["httpGet"]["path"] == "/ready"
    for doc in rendered:
        if doc["kind"] not in ("Deployment", "CronJob", "Job"):
            continue
        spec = _pod_spec(doc)
        assert spec["securityContext"]["runAsNonRoot"] is True, doc["metadata"]["name"]
        for container in spec["containers"]:
            where = f"{doc['kind']}/{doc['metadata']['name']}/{container['name']}"
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][kind]), where
            refs = [e["valueFrom"]["secretKeyRef"] for e in container.get("env", []) if "valueFrom" in e]
            assert refs and all(r["name"] == "clvdrift-secrets" for r in refs), where
            assert all("value" not in e for e in container.get("env", []) if "PASSWORD" in e["name"]), where
            mounts = {m["name"] for m in container["volumeMounts"]}
            if doc["kind"] != "Job":
                assert "artifacts" in mounts, where
    claims = {
        v["persistentVolumeClaim"]["claimName"]
        for d in rendered
        if d["kind"] in ("Deployment", "CronJob")
        for v in _pod_spec(d)["volumes"]
        if "persistentVolumeClaim" in v
    }
    assert claims == {"clvdrift-artifacts"}


def test_the_production_overlay() -> None:
    docs = _render(K8S / "overlays" / "production")
    objects = _by_kind(docs)
    assert ("Namespace", "clvdrift") in objects
    namespaced = [d for d in docs if d["kind"] != "Namespace"]
    assert {d["metadata"].get("namespace") for d in namespaced} == {"clvdrift"}
    images = {
        c["image"]
        for d in docs
        if d["kind"] in ("Deployment", "CronJob", "Job")
        for c in _pod_spec(d)["containers"]
    }
    assert images == {"registry.example.com/clvdrift/clvdrift:0.1.0"}
    hpa = objects[("HorizontalPodAutoscaler", "clvdrift-api")]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 12)
    api = objects[("Deployment", "clvdrift-api")]
    assert api["spec"]["replicas"] == 3
    assert api["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"] == "2Gi"
    assert api["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["path"] == "/health"
