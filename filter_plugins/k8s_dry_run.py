"""What a kubernetes.core.k8s server-side dry run of several manifests says the real apply would change.

The roles dry-run every manifest before applying any (validation) and skip the apply when the dry run
found nothing to change: server-side apply compares the object the API server would store with the
one it stores, so the real apply would report exactly the same. A re-run of an unchanged phase then
costs one API round trip per object instead of two.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def _name(manifest: Mapping) -> str:
    metadata = manifest.get("metadata") or {}
    namespace = f"{metadata['namespace']}/" if metadata.get("namespace") else ""
    return f"{manifest.get('kind', '?')} {namespace}{metadata.get('name', '?')}"


def k8s_pending_changes(dry_run: Mapping, manifests: Sequence[Mapping]) -> list[str]:
    """`Kind namespace/name` of every manifest the dry run would change, in the manifests' order.

    `dry_run` is the registered result of a k8s call with the list `manifests` as definition: one entry
    per manifest under `result.results`. Any other shape (one manifest, whose `changed` the task's
    `changed_when` overwrote; a skipped task) cannot be read, so every manifest counts as pending.
    """
    outcome = dry_run.get("result")
    results = outcome.get("results") if isinstance(outcome, Mapping) else None
    if not isinstance(results, list) or len(results) != len(manifests):
        return [_name(manifest) for manifest in manifests]
    return [_name(manifest) for manifest, result in zip(manifests, results, strict=True) if result.get("changed", True)]


class FilterModule:
    def filters(self) -> dict[str, object]:
        return {"k8s_pending_changes": k8s_pending_changes}
