"""What a container of a lab pod sees: its environment and the files its volumes mount.

The kubelet would resolve `env` (values, Secret and ConfigMap keys, the downward API) and mount
ConfigMaps, Secrets, projected volumes and the service-account token. The lab does the same into a
directory per pod (`root`), so a path in a configuration (`/etc/alloy/x.alloy`,
`/var/run/secrets/kubernetes.io/serviceaccount/token`) maps to `root` + path, and a file the pod
would not have is missing there too.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"

GetObject = Callable[[str, str, str], dict | None]
TokenFor = Callable[[str, str], str]


class PodSpecError(Exception):
    """The container could not start as specified (the kubelet's CreateContainerConfigError)."""


@dataclass(frozen=True)
class ClusterFiles:
    """The cluster-wide inputs of a pod's filesystem."""

    get: GetObject  # (resource, namespace, name) -> object or None
    token_for: TokenFor  # (namespace, service account) -> bearer token
    ca_pem: str


def _data(obj: dict, kind: str) -> dict[str, str]:
    if kind == "secrets":
        decoded = {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
        return {**decoded, **(obj.get("stringData") or {})}
    return {**(obj.get("data") or {}), **(obj.get("binaryData") or {})}


class PodFiles:
    """One container's view: `env` and `root` (its mounts written below it)."""

    def __init__(self, pod: dict, container: dict, cluster: ClusterFiles, root: Path) -> None:
        self.pod, self.container, self.cluster, self.root = pod, container, cluster, Path(root)
        self.namespace = pod["metadata"].get("namespace", "default")
        self.env = self._environment()

    # --- environment ----------------------------------------------------------------------------------

    def _environment(self) -> dict[str, str]:
        env: dict[str, str] = {}
        for source in self.container.get("envFrom") or []:
            prefix = source.get("prefix", "")
            for kind, key in (("secrets", "secretRef"), ("configmaps", "configMapRef")):
                if key in source:
                    values = self._object_data(kind, source[key].get("name", ""), source[key].get("optional", False))
                    env.update({prefix + k: v for k, v in values.items()})
        for item in self.container.get("env") or []:
            env[item["name"]] = self._env_value(item, env)
        return env

    def _env_value(self, item: dict, env: dict[str, str]) -> str:
        if "valueFrom" not in item:
            value = str(item.get("value", ""))
            for name, current in env.items():
                value = value.replace(f"$({name})", current)
            return value
        source = item["valueFrom"]
        for kind, key in (("secrets", "secretKeyRef"), ("configmaps", "configMapKeyRef")):
            if key in source:
                ref = source[key]
                values = self._object_data(kind, ref.get("name", ""), ref.get("optional", False))
                if ref.get("key") not in values and not ref.get("optional", False):
                    raise PodSpecError(
                        f"couldn't find key {ref.get('key')} in {kind[:-1]} {self.namespace}/{ref.get('name')}"
                    )
                return values.get(ref.get("key"), "")
        if "fieldRef" in source:
            return self._field(source["fieldRef"].get("fieldPath", ""))
        return ""

    def _field(self, path: str) -> str:
        meta, spec, status = self.pod["metadata"], self.pod.get("spec") or {}, self.pod.get("status") or {}
        fields = {
            "metadata.name": meta.get("name", ""),
            "metadata.namespace": self.namespace,
            "metadata.uid": meta.get("uid", ""),
            "spec.nodeName": spec.get("nodeName", ""),
            "spec.serviceAccountName": spec.get("serviceAccountName", "default"),
            "status.podIP": status.get("podIP", ""),
            "status.hostIP": status.get("hostIP", ""),
        }
        return fields.get(path, "")

    def _object_data(self, kind: str, name: str, optional: bool) -> dict[str, str]:
        obj = self.cluster.get(kind, self.namespace, name)
        if obj is None:
            if optional:
                return {}
            raise PodSpecError(f'{kind[:-1]} "{name}" not found')
        return _data(obj, kind)

    # --- files -----------------------------------------------------------------------------------------

    def host_path(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    def read_file(self, path: str) -> str:
        return self.host_path(path).read_text()

    def materialize(self) -> None:
        """Bring the files below `root` in line with the container's mounts.

        Files are replaced atomically and only when their content changes: a reader (a scrape reading
        the token) never sees a missing or half-written file, as with the kubelet's atomic writer.
        """
        wanted: dict[Path, str] = {}
        volumes = {v["name"]: v for v in (self.pod.get("spec") or {}).get("volumes") or []}
        mounts = self.container.get("volumeMounts") or []
        for mount in mounts:
            volume = volumes.get(mount["name"])
            if volume is None:
                raise PodSpecError(f'volume "{mount["name"]}" not found in the pod spec')
            files = self._volume_files(volume)
            target = self.host_path(mount["mountPath"])
            if mount.get("subPath"):
                wanted[target] = files.get(mount["subPath"], "")
            else:
                wanted.update({target / relative: content for relative, content in files.items()})
        if self._automount() and not any(m["mountPath"].rstrip("/") == SERVICE_ACCOUNT_DIR for m in mounts):
            directory = self.host_path(SERVICE_ACCOUNT_DIR)
            wanted.update({directory / name: content for name, content in self._service_account_files().items()})
        self.root.mkdir(parents=True, exist_ok=True)
        for path in [p for p in self.root.rglob("*") if p.is_file() and p not in wanted]:
            path.unlink()
        for path, content in wanted.items():
            self._write(path, content)

    def _automount(self) -> bool:
        spec = self.pod.get("spec") or {}
        return spec.get("automountServiceAccountToken", True) is not False

    def _service_account_files(self) -> dict[str, str]:
        account = (self.pod.get("spec") or {}).get("serviceAccountName") or "default"
        return {
            "token": self.cluster.token_for(self.namespace, account),
            "ca.crt": self.cluster.ca_pem,
            "namespace": self.namespace,
        }

    def _volume_files(self, volume: dict) -> dict[str, str]:
        if "configMap" in volume:
            source = volume["configMap"]
            return self._projected("configmaps", source.get("name", ""), source)
        if "secret" in volume:
            source = volume["secret"]
            return self._projected("secrets", source.get("secretName", ""), source)
        if "projected" in volume:
            files: dict[str, str] = {}
            for source in volume["projected"].get("sources") or []:
                if "configMap" in source:
                    files.update(
                        self._projected("configmaps", source["configMap"].get("name", ""), source["configMap"])
                    )
                elif "secret" in source:
                    files.update(self._projected("secrets", source["secret"].get("name", ""), source["secret"]))
                elif "serviceAccountToken" in source:
                    files[source["serviceAccountToken"].get("path", "token")] = self._service_account_files()["token"]
            return files
        return {}

    def _projected(self, kind: str, name: str, source: dict) -> dict[str, str]:
        values = self._object_data(kind, name, source.get("optional", False))
        items = source.get("items")
        if not items:
            return values
        return {item.get("path", item["key"]): values.get(item["key"], "") for item in items if item["key"] in values}

    @staticmethod
    def _write(path: Path, content: str) -> None:
        if path.is_file() and path.read_text() == content:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial")
        partial.write_text(content)
        partial.chmod(0o600)
        partial.replace(path)
