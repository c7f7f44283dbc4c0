"""Kubernetes service discovery as Prometheus (and so Alloy's discovery.kubernetes) performs it.

From the lab's API objects, the targets and `__meta_kubernetes_*` labels of the roles node, pod,
service, endpoints and endpointslice, as prometheus/prometheus discovery/kubernetes/*.go builds
them (label names, which labels exist only when a field is set, the extra targets for container
ports no endpoint covers). Each target becomes one file_sd group, so a Prometheus agent reading the
file sees exactly the labelled targets Alloy's discovery would hand to its relabel rules.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from lab.k8s import selectors as k8s_selectors

META = "__meta_kubernetes_"
ROLES = ("node", "pod", "service", "endpoints", "endpointslice")
_INVALID_LABEL_CHARS = re.compile(r"[^a-zA-Z0-9_]")


@dataclass(frozen=True)
class Snapshot:
    """The API objects discovery reads, taken at one moment."""

    nodes: list[dict] = field(default_factory=list)
    pods: list[dict] = field(default_factory=list)
    services: list[dict] = field(default_factory=list)
    endpoints: list[dict] = field(default_factory=list)
    endpointslices: list[dict] = field(default_factory=list)


@dataclass(frozen=True)
class Selector:
    role: str
    label: str = ""
    field: str = ""


@dataclass(frozen=True)
class DiscoveryConfig:
    role: str
    namespaces: tuple[str, ...] = ()
    selectors: tuple[Selector, ...] = ()


Group = dict[str, Any]


def sanitize(name: str) -> str:
    """strutil.SanitizeLabelName: every character outside [a-zA-Z0-9_] becomes an underscore."""
    return _INVALID_LABEL_CHARS.sub("_", name)


def discover(config: DiscoveryConfig, snapshot: Snapshot) -> list[Group]:
    """file_sd groups (one target each) for the role, after namespace and selector filtering."""
    view = _View(config, snapshot)
    builders: dict[str, Callable[[], Iterable[Group]]] = {
        "node": view.node_groups,
        "pod": view.pod_groups,
        "service": view.service_groups,
        "endpoints": view.endpoints_groups,
        "endpointslice": view.endpointslice_groups,
    }
    return list(builders[config.role]())


class _View:
    def __init__(self, config: DiscoveryConfig, snapshot: Snapshot) -> None:
        self.config = config
        self.nodes = self._select("node", snapshot.nodes, namespaced=False)
        self.pods = self._select("pod", snapshot.pods)
        self.services = self._select("service", snapshot.services)
        self.endpoints = self._select("endpoints", snapshot.endpoints)
        self.endpointslices = self._select("endpointslice", snapshot.endpointslices)

    def _select(self, role: str, objects: list[dict], namespaced: bool = True) -> list[dict]:
        wanted = set(self.config.namespaces)
        chosen = [o for o in objects if not namespaced or not wanted or o["metadata"].get("namespace") in wanted]
        for selector in self.config.selectors:
            if selector.role != role:
                continue
            labels_ok = k8s_selectors.label_matcher(selector.label or None)
            fields_ok = k8s_selectors.field_matcher(selector.field or None)
            chosen = [o for o in chosen if labels_ok(o["metadata"].get("labels") or {}) and fields_ok(o)]
        return chosen

    def _pod(self, ref: dict | None) -> dict | None:
        if not ref or ref.get("kind") != "Pod":
            return None
        return next(
            (
                p
                for p in self.pods
                if p["metadata"]["name"] == ref.get("name") and p["metadata"].get("namespace") == ref.get("namespace")
            ),
            None,
        )

    def _service(self, namespace: str, name: str | None) -> dict | None:
        if name is None:
            return None
        return next(
            (s for s in self.services if s["metadata"]["name"] == name and s["metadata"].get("namespace") == namespace),
            None,
        )

    # --- node -------------------------------------------------------------------------------------------

    def node_groups(self) -> Iterable[Group]:
        for node in self.nodes:
            status = node.get("status") or {}
            by_type: dict[str, list[str]] = {}
            for address in status.get("addresses") or []:
                by_type.setdefault(address.get("type", ""), []).append(address.get("address", ""))
            host = next(
                (
                    by_type[kind][0]
                    for kind in ("InternalIP", "InternalDNS", "ExternalIP", "ExternalDNS", "LegacyHostIP", "Hostname")
                    if by_type.get(kind)
                ),
                None,
            )
            if host is None:
                continue
            port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port", 10250)
            labels = {f"{META}node_provider_id": (node.get("spec") or {}).get("providerID", "")}
            object_meta_labels(labels, node["metadata"], "node")
            labels["instance"] = node["metadata"]["name"]
            for kind, addresses in by_type.items():
                labels[sanitize(f"{META}node_address_{kind}")] = addresses[0]
            yield _group(join_host_port(host, port), labels)

    # --- pod --------------------------------------------------------------------------------------------

    def pod_groups(self) -> Iterable[Group]:
        for pod in self.pods:
            status, spec = pod.get("status") or {}, pod.get("spec") or {}
            pod_ip = status.get("podIP", "")
            if not pod_ip:
                continue
            common = {**pod_labels(pod), f"{META}namespace": pod["metadata"].get("namespace", "")}
            containers = [(c, False) for c in spec.get("containers") or []] + [
                (c, True) for c in spec.get("initContainers") or []
            ]
            for container, is_init in containers:
                statuses = status.get("initContainerStatuses" if is_init else "containerStatuses") or []
                container_id = next(
                    (s.get("containerID", "") for s in statuses if s.get("name") == container["name"]), ""
                )
                base = {
                    f"{META}pod_container_name": container["name"],
                    f"{META}pod_container_id": container_id,
                    f"{META}pod_container_image": container.get("image", ""),
                    f"{META}pod_container_init": "true" if is_init else "false",
                }
                ports = container.get("ports") or []
                if not ports:
                    yield _group(pod_ip, {**common, **base})
                    continue
                for port in ports:
                    number = str(port["containerPort"])
                    yield _group(
                        join_host_port(pod_ip, number),
                        {
                            **common,
                            **base,
                            f"{META}pod_container_port_number": number,
                            f"{META}pod_container_port_name": port.get("name", ""),
                            f"{META}pod_container_port_protocol": port.get("protocol", "TCP"),
                        },
                    )

    # --- service ----------------------------------------------------------------------------------------

    def service_groups(self) -> Iterable[Group]:
        for service in self.services:
            spec, meta = service.get("spec") or {}, service["metadata"]
            common = service_labels(service)
            kind = spec.get("type", "ClusterIP")
            for port in spec.get("ports") or []:
                labels = {
                    **common,
                    f"{META}service_port_name": port.get("name", ""),
                    f"{META}service_port_number": str(port["port"]),
                    f"{META}service_port_protocol": port.get("protocol", "TCP"),
                    f"{META}service_type": kind,
                }
                if kind == "ExternalName":
                    labels[f"{META}service_external_name"] = spec.get("externalName", "")
                else:
                    labels[f"{META}service_cluster_ip"] = spec.get("clusterIP", "")
                if kind == "LoadBalancer":
                    labels[f"{META}service_loadbalancer_ip"] = spec.get("loadBalancerIP", "")
                address = join_host_port(f"{meta['name']}.{meta.get('namespace', '')}.svc", port["port"])
                yield _group(address, labels)

    # --- endpoints --------------------------------------------------------------------------------------

    def endpoints_groups(self) -> Iterable[Group]:
        for endpoints in self.endpoints:
            meta = endpoints["metadata"]
            namespace = meta.get("namespace", "")
            common = {f"{META}namespace": namespace}
            service = self._service(namespace, meta["name"])
            if service is not None:
                common.update(service_labels(service))
            object_meta_labels(common, meta, "endpoints")
            seen: dict[str, tuple[dict, list[int]]] = {}
            for subset in endpoints.get("subsets") or []:
                for port in subset.get("ports") or []:
                    for address, ready in [(a, "true") for a in subset.get("addresses") or []] + [
                        (a, "false") for a in subset.get("notReadyAddresses") or []
                    ]:
                        target = {
                            f"{META}endpoint_port_name": port.get("name", ""),
                            f"{META}endpoint_port_protocol": port.get("protocol", "TCP"),
                            f"{META}endpoint_ready": ready,
                        }
                        ref = address.get("targetRef")
                        if ref:
                            target[f"{META}endpoint_address_target_kind"] = ref.get("kind", "")
                            target[f"{META}endpoint_address_target_name"] = ref.get("name", "")
                        if address.get("nodeName") is not None:
                            target[f"{META}endpoint_node_name"] = address["nodeName"]
                        if address.get("hostname"):
                            target[f"{META}endpoint_hostname"] = address["hostname"]
                        yield _group(
                            join_host_port(address.get("ip", ""), port["port"]),
                            {**common, **self._with_pod(target, ref, port["port"], seen)},
                        )
            yield from _uncovered_ports(common, seen)

    # --- endpointslice ----------------------------------------------------------------------------------

    def endpointslice_groups(self) -> Iterable[Group]:
        for eps in self.endpointslices:
            meta = eps["metadata"]
            namespace = meta.get("namespace", "")
            common = {f"{META}namespace": namespace, f"{META}endpointslice_address_type": eps.get("addressType", "")}
            object_meta_labels(common, meta, "endpointslice")
            service = self._service(namespace, (meta.get("labels") or {}).get("kubernetes.io/service-name"))
            if service is not None:
                common.update(service_labels(service))
            seen: dict[str, tuple[dict, list[int]]] = {}
            for endpoint in eps.get("endpoints") or []:
                for port in eps.get("ports") or []:
                    for address in endpoint.get("addresses") or []:
                        target = _slice_target(endpoint, port)
                        number = port.get("port")
                        yield _group(
                            join_host_port(address, number) if number is not None else address,
                            {**common, **self._with_pod(target, endpoint.get("targetRef"), number, seen)},
                        )
            yield from _uncovered_ports(common, seen)

    def _with_pod(
        self, target: dict[str, str], ref: dict | None, port: int | None, seen: dict[str, tuple[dict, list[int]]]
    ) -> dict[str, str]:
        pod = self._pod(ref)
        if pod is None:
            return target
        key = f"{pod['metadata'].get('namespace')}/{pod['metadata']['name']}"
        seen.setdefault(key, (pod, []))[1].append(port)
        labels = {**target, **pod_labels(pod)}
        for container in (pod.get("spec") or {}).get("containers") or []:
            match = next(
                (p for p in container.get("ports") or [] if port is not None and p["containerPort"] == port), None
            )
            if match is not None:
                labels.update(_container_port_labels(container, match))
                break
        return labels


def _slice_target(endpoint: dict, port: dict) -> dict[str, str]:
    target: dict[str, str] = {}
    if port.get("name") is not None:
        target[f"{META}endpointslice_port_name"] = port["name"]
    if port.get("protocol") is not None:
        target[f"{META}endpointslice_port_protocol"] = port["protocol"]
    if port.get("port") is not None:
        target[f"{META}endpointslice_port"] = str(port["port"])
    if port.get("appProtocol") is not None:
        target[f"{META}endpointslice_port_app_protocol"] = port["appProtocol"]
    conditions = endpoint.get("conditions") or {}
    for name in ("ready", "serving", "terminating"):
        if conditions.get(name) is not None:
            target[f"{META}endpointslice_endpoint_conditions_{name}"] = "true" if conditions[name] else "false"
    if endpoint.get("hostname") is not None:
        target[f"{META}endpointslice_endpoint_hostname"] = endpoint["hostname"]
    ref = endpoint.get("targetRef")
    if ref:
        target[f"{META}endpointslice_address_target_kind"] = ref.get("kind", "")
        target[f"{META}endpointslice_address_target_name"] = ref.get("name", "")
    if endpoint.get("nodeName") is not None:
        target[f"{META}endpointslice_endpoint_node_name"] = endpoint["nodeName"]
    if endpoint.get("zone") is not None:
        target[f"{META}endpointslice_endpoint_zone"] = endpoint["zone"]
    for key, value in (endpoint.get("deprecatedTopology") or {}).items():
        target[f"{META}endpointslice_endpoint_topology_{sanitize(key)}"] = value
        target[f"{META}endpointslice_endpoint_topology_present_{sanitize(key)}"] = "true"
    return target


def _uncovered_ports(common: dict[str, str], seen: dict[str, tuple[dict, list[int]]]) -> Iterable[Group]:
    """Targets for the container ports of seen pods that no endpoint port covered."""
    for pod, covered in seen.values():
        pod_ip = (pod.get("status") or {}).get("podIP", "")
        if not pod_ip:
            continue
        for container in (pod.get("spec") or {}).get("containers") or []:
            for port in container.get("ports") or []:
                if port["containerPort"] in covered:
                    continue
                yield _group(
                    join_host_port(pod_ip, port["containerPort"]),
                    {**common, **_container_port_labels(container, port), **pod_labels(pod)},
                )


def _container_port_labels(container: dict, port: dict) -> dict[str, str]:
    return {
        f"{META}pod_container_name": container["name"],
        f"{META}pod_container_image": container.get("image", ""),
        f"{META}pod_container_port_name": port.get("name", ""),
        f"{META}pod_container_port_number": str(port["containerPort"]),
        f"{META}pod_container_port_protocol": port.get("protocol", "TCP"),
    }


def object_meta_labels(labels: dict[str, str], meta: dict, role: str) -> None:
    labels[f"{META}{role}_name"] = meta.get("name", "")
    for key, value in (meta.get("labels") or {}).items():
        labels[f"{META}{role}_label_{sanitize(key)}"] = value
        labels[f"{META}{role}_labelpresent_{sanitize(key)}"] = "true"
    for key, value in (meta.get("annotations") or {}).items():
        labels[f"{META}{role}_annotation_{sanitize(key)}"] = value
        labels[f"{META}{role}_annotationpresent_{sanitize(key)}"] = "true"


def pod_labels(pod: dict) -> dict[str, str]:
    status, spec, meta = pod.get("status") or {}, pod.get("spec") or {}, pod["metadata"]
    ready = next((c.get("status", "") for c in status.get("conditions") or [] if c.get("type") == "Ready"), "Unknown")
    labels = {
        f"{META}pod_ip": status.get("podIP", ""),
        f"{META}pod_ready": str(ready).lower(),
        f"{META}pod_phase": status.get("phase", ""),
        f"{META}pod_node_name": spec.get("nodeName", ""),
        f"{META}pod_host_ip": status.get("hostIP", ""),
        f"{META}pod_uid": meta.get("uid", ""),
    }
    for entry in status.get("podIPs") or []:
        ip = entry.get("ip", "")
        key = f"{META}pod_ipv6" if ":" in ip else f"{META}pod_ipv4"
        if ip and key not in labels:
            labels[key] = ip
    object_meta_labels(labels, meta, "pod")
    controller = next((ref for ref in meta.get("ownerReferences") or [] if ref.get("controller")), None)
    if controller is not None:
        if controller.get("kind"):
            labels[f"{META}pod_controller_kind"] = controller["kind"]
        if controller.get("name"):
            labels[f"{META}pod_controller_name"] = controller["name"]
    return labels


def service_labels(service: dict) -> dict[str, str]:
    labels = {f"{META}namespace": service["metadata"].get("namespace", "")}
    object_meta_labels(labels, service["metadata"], "service")
    return labels


def join_host_port(host: str, port: int | str) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _group(address: str, labels: dict[str, str]) -> Group:
    return {"targets": [address], "labels": labels}
