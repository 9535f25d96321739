"""Image cross-checks: every pod runs the one puzzle-ray image of the environment, whose tag spells the package
version, the pinned Ray version and the Python of its rayproject/ray base; Ray clusters declare that Ray
version; GPU pods run a CUDA build."""

from __future__ import annotations

import re

from packaging.version import Version

from .manifests import containers, pod_templates, ray_cluster_specs
from .problem import Problem, at
from .repo import RepoFacts

IMAGE_NAME = "puzzle-ray"
# Ray token authentication (authOptions.mode: token) needs Ray >= 2.52 (KubeRay rejects older rayVersion).
MIN_RAY_FOR_TOKEN_AUTH = Version("2.52.0")


def image_tag_pattern(facts: RepoFacts) -> re.Pattern:
    """0.1.0-ray2.60.0-py311-cu128: package version, Ray pin, Python tag, then `cpu` or `cuNNN` (the base)."""
    return re.compile(
        rf"{re.escape(facts.project_version)}-ray{re.escape(facts.ray_version)}-{facts.python_tag}-(cpu|cu\d+)"
    )


def split_image(image: str) -> tuple[str, str]:
    """ "registry:5000/ns/name:tag" -> ("registry:5000/ns/name", "tag"); no tag -> ""."""
    image = image.split("@", 1)[0]
    slash = image.rfind("/")
    colon = image.rfind(":")
    return (image[:colon], image[colon + 1 :]) if colon > slash else (image, "")


def check_images(docs: list[dict], facts: RepoFacts) -> list[Problem]:
    pattern = image_tag_pattern(facts)
    problems, seen = [], {}
    for doc in docs:
        for path, template in pod_templates(doc):
            wants_gpu = any(
                "nvidia.com/gpu" in ((c.get("resources") or {}).get("limits") or {}) for _, c in containers(template)
            )
            for cpath, container in containers(template):
                where = at(doc, *path, *cpath, "image")
                image = str(container.get("image", ""))
                repo, tag = split_image(image)
                seen.setdefault(image, where)
                if repo.rsplit("/", 1)[-1] != IMAGE_NAME:
                    problems.append(
                        Problem(where, f"{image!r} is not the {IMAGE_NAME} image (infra/docker/Dockerfile)")
                    )
                    continue
                match = pattern.fullmatch(tag)
                if match is None:
                    problems.append(
                        Problem(
                            where,
                            f"tag {tag!r} does not match {pattern.pattern!r} (pyproject version "
                            f"{facts.project_version}, constraints.txt ray=={facts.ray_version})",
                        )
                    )
                elif wants_gpu and match.group(1) == "cpu":
                    problems.append(Problem(where, "a pod with nvidia.com/gpu limits runs the CPU build of the image"))
        for path, cluster in ray_cluster_specs(doc):
            version = str(cluster.get("rayVersion", ""))
            if version != facts.ray_version:
                problems.append(
                    Problem(at(doc, *path, "rayVersion"), f"{version!r} != constraints.txt ray=={facts.ray_version}")
                )
            elif (cluster.get("authOptions") or {}).get("mode") == "token" and Version(
                version
            ) < MIN_RAY_FOR_TOKEN_AUTH:
                problems.append(Problem(at(doc, *path, "rayVersion"), "token authentication needs Ray >= 2.52.0"))
            if (cluster.get("autoscalerOptions") or {}).get("image"):
                problems.append(
                    Problem(at(doc, *path, "autoscalerOptions", "image"), "leave unset: KubeRay uses the head's image")
                )
    if len(seen) > 1:
        listing = "; ".join(f"{image} ({where})" for image, where in seen.items())
        problems.append(Problem("images", f"one image per environment expected, found {len(seen)}: {listing}"))
    return problems
