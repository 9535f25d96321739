"""Deployment of puzzle-ray: the container image (docker/), Kubernetes manifests (k8s/), the project's strict
KubeRay schemas (schemas/) and their offline validation (validation/, run as `python -m infra.validation`)."""
