"""The lab process: starts every component, writes the client files, serves a control endpoint."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

from lab.collectors.network import PodNetwork
from lab.collectors.podfs import ClusterFiles
from lab.collectors.runtime import CollectorsRuntime
from lab.collectors.toolkit import talos as talos_plan
from lab.config import LabConfig
from lab.controllers import Controllers
from lab.k8s import rbac
from lab.k8s.api import Api
from lab.k8s.proxy import Proxy
from lab.k8s.server import ApiServer
from lab.k8s.store import Store
from lab.metrics.config import MetricsConfig
from lab.metrics.plane import MetricsPlane
from lab.nodes import NodeLifecycle
from lab.pki import Pki
from lab.seed import Seeder
from lab.talos.apid import TalosApiServer, serve_talos_api, server_ssl_context
from lab.talos.cluster import NodeSpec, TalosCluster
from lab.talos.patching import apply_patches, load_patch
from lab.talos.talosconfig import write_talosconfig

STATE_FILE = "lab.json"
# `python -m lab up --stage <stage>`: the lab as it stands after a phase of the migration.
STAGES = ("", "containerd")


class Lab:
    def __init__(self, config: LabConfig) -> None:
        self.config = config
        self.run_dir = config.run_dir
        self.store = Store()
        self.api = Api(self.store, config.kubernetes_version)
        self.admin_token = secrets.token_urlsafe(32)
        self.control_token = secrets.token_urlsafe(24)
        self.controllers = Controllers(self.api, config.pod_ready_seconds, config.namespace)
        self.nodes = NodeLifecycle(self.api, config)
        self.scrape_token = secrets.token_urlsafe(32)
        self.network = PodNetwork()
        self.server: ApiServer | None = None
        self.control: ThreadingHTTPServer | None = None
        self.apid: TalosApiServer | None = None
        self.talos = TalosCluster(
            config.cluster_name,
            [NodeSpec(n.name, n.address, n.role, n.talos_version) for n in config.nodes],
            _LabHooks(self),
            config.reboot_seconds,
        )
        self.metrics = MetricsPlane(
            self.store,
            MetricsConfig(legacy_namespace=config.namespace, app_namespaces=tuple(config.apps), **config.metrics),
            config.run_dir / "metrics",
            authenticate=lambda token: self.server is not None and self.server.authenticate(token),
            scrape_token=self.scrape_token,
            publish_routes=lambda routes: self.network.set_routes("metrics-plane", routes),
            authorize=self.authorize_kubelet,
        )
        self.collectors: CollectorsRuntime | None = None
        self._service_account_tokens: dict[tuple[str, str], str] = {}
        self._token_accounts: dict[str, rbac.ServiceAccount] = {}
        self.started = time.time()
        self._started = contextlib.ExitStack()

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        """Start every component; one that fails to start stops those started before it (no orphaned agents)."""
        with contextlib.ExitStack() as started:
            started.callback(self.store.close)
            self._start_components(started)
            self._started = started.pop_all()

    def _start_components(self, started: contextlib.ExitStack) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        # The cluster is seeded afresh, so its metrics store and agents start empty too: series an earlier
        # lab of this run directory wrote would still look fresh to the next one's checks for minutes.
        for leftover in ("metrics", "collectors"):
            shutil.rmtree(self.run_dir / leftover, ignore_errors=True)
        self.pki = Pki(self.run_dir / "pki")
        issued = self.pki.issue("apiserver", ["127.0.0.1", "localhost", "kubernetes", "kubernetes.default.svc"])
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(issued.cert, issued.key)
        self.server = ApiServer(
            ("127.0.0.1", self.config.api_port), self.api, {self.admin_token, self.scrape_token}, context
        )
        started.callback(self.server.server_close)
        self.server.requests.path = str(self.run_dir / "api-requests.jsonl")
        self.server.proxy = Proxy(self.store.get, self._pod_network_address, self.scrape_token)
        threading.Thread(target=self.server.serve_forever, name="apiserver", daemon=True).start()
        started.callback(self.server.shutdown)
        self.nodes.register()
        Seeder(self.api, self.config).run()
        self.controllers.start()
        started.callback(self.controllers.stop)
        self._start_talos(started)
        if self.config.stage == "containerd":
            self._containerd_metrics_stage()
        self.metrics.start()
        started.callback(self.metrics.stop)
        self.collectors = CollectorsRuntime(
            self.store,
            self.network,
            self.run_dir / "collectors",
            ClusterFiles(self.store.get, self.service_account_token, self.pki.ca_cert.read_text()),
            api_address="{}:{}".format(*self.server.server_address[:2]),
            tenant_routing=self.metrics.config.multitenancy_enabled,
            ready_timeout=self.metrics.config.ready_timeout_seconds,
        )
        self.controllers.readiness_gates.append(self.collectors.may_be_ready)
        self.collectors.on_readiness_change = self.controllers.wake
        self.collectors.start()
        started.callback(self.collectors.stop)
        self.control = _ControlServer(self)
        started.callback(self.control.server_close)
        threading.Thread(target=self.control.serve_forever, name="control", daemon=True).start()
        started.callback(self.control.shutdown)
        self._write_client_files()

    def _start_talos(self, started: contextlib.ExitStack) -> None:
        started.callback(self.talos.close)
        apid = self.pki.issue("apid", ["127.0.0.1", *(n.address for n in self.config.nodes)])
        admin = self.pki.issue("talos-admin", client=True, org="os:admin")
        ca_pem = self.pki.ca_cert.read_bytes()
        context = server_ssl_context(ca_pem, apid.cert.read_bytes(), apid.key.read_bytes())
        self.apid = serve_talos_api(self.talos, "127.0.0.1", self.config.apid_port, context)
        started.callback(self.apid.shutdown)
        first = self.config.control_plane[0] if self.config.control_plane else self.config.nodes[0]
        write_talosconfig(
            self.run_dir / "talosconfig",
            self.config.cluster_name,
            [f"127.0.0.1:{self.apid.port}"],
            [first.address],
            ca_pem,
            admin.cert.read_bytes(),
            admin.key.read_bytes(),
        )

    def _containerd_metrics_stage(self) -> None:
        """Every node boots with the machine config the talos_containerd_metrics role writes for its version."""
        with self.talos.locked():
            for node in self.talos.nodes():
                version = talos_plan.TalosVersion.parse(str(node.version))
                plan = talos_plan.plan_metrics(node.persistent, version, "present", talos_plan.DEFAULT_METRICS_ADDRESS)
                node.persistent = apply_patches(node.persistent, [load_patch(patch) for patch in plan.patches])
                node.finish_boot(time.time())
                self.metrics.set_containerd_address(node.name, node.metrics_address())

    def _pod_network_address(self, address: str) -> str | None:
        route = self.network.resolve(address)
        return route.address if route is not None else None

    def service_account_token(self, namespace: str, account: str) -> str:
        """The bearer token a pod of this ServiceAccount gets mounted; the API server accepts it."""
        key = (namespace, account)
        if key not in self._service_account_tokens:
            token = secrets.token_urlsafe(32)
            self._service_account_tokens[key] = token
            self._token_accounts[token] = rbac.ServiceAccount(namespace, account)
            assert self.server is not None
            self.server.tokens.add(token)
        return self._service_account_tokens[key]

    def authorize_kubelet(self, token: str, subresource: str) -> str | None:
        """The kubelet's webhook authorization: a service account needs `get` on nodes/<subresource>."""
        account = self._token_accounts.get(token)
        if account is None or rbac.allowed(self.store.list, account, "get", "", f"nodes/{subresource}"):
            return None
        return f"Forbidden (user={account.user}, verb=get, resource=nodes, subresource={subresource})"

    def wait_settled(self, stopping: threading.Event, timeout: float = 60.0) -> bool:
        """True once every seeded workload reports all its pods ready; False after `timeout` or once `stopping`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.workloads_ready():
                return True
            if stopping.wait(0.2):
                return False
        return False

    def workloads_ready(self) -> bool:
        deployments = self.store.list("deployments.apps")
        statefulsets = self.store.list("statefulsets.apps")
        daemonsets = self.store.list("daemonsets.apps")
        return (
            all((d.get("status") or {}).get("readyReplicas", 0) == d["spec"]["replicas"] for d in deployments)
            and all((s.get("status") or {}).get("readyReplicas", 0) == s["spec"]["replicas"] for s in statefulsets)
            and bool(statefulsets)
            and all(
                (d.get("status") or {}).get("numberReady", -1) == d.get("status", {}).get("desiredNumberScheduled")
                for d in daemonsets
            )
        )

    def stop(self) -> None:
        """Stop what start() started, in reverse order."""
        self._started.close()

    # -- files for clients ----------------------------------------------------------------------
    @property
    def api_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"https://{host}:{port}"

    def files(self) -> dict[str, str]:
        return {
            "kubeconfig": str(self.run_dir / "kubeconfig"),
            "talosconfig": str(self.run_dir / "talosconfig"),
            "talosctl": str(lab_bin() / "talosctl"),
            "ca": str(self.pki.ca_cert),
            "token": str(self.run_dir / "token"),
            "api request log": str(self.run_dir / "api-requests.jsonl"),
            "log": str(self.run_dir / "lab.log"),
        }

    def _write_client_files(self) -> None:
        ca_data = base64.b64encode(self.pki.ca_cert.read_bytes()).decode()
        kubeconfig = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": self.config.cluster_name,
                    "cluster": {"server": self.api_url, "certificate-authority-data": ca_data},
                }
            ],
            "users": [{"name": "lab-admin", "user": {"token": self.admin_token}}],
            "contexts": [
                {
                    "name": f"admin@{self.config.cluster_name}",
                    "context": {"cluster": self.config.cluster_name, "user": "lab-admin"},
                }
            ],
            "current-context": f"admin@{self.config.cluster_name}",
        }
        _write_secret(self.run_dir / "kubeconfig", yaml.safe_dump(kubeconfig, sort_keys=False))
        _write_secret(self.run_dir / "token", self.admin_token)
        state = {
            "pid": os.getpid(),
            "started": self.started,
            "api": self.api_url,
            "control": "http://{}:{}".format(*self.control.server_address[:2]),
            "control_token": self.control_token,
            "files": self.files(),
        }
        _write_secret(self.run_dir / STATE_FILE, json.dumps(state, indent=2))

    # -- status ---------------------------------------------------------------------------------
    def status(self) -> dict:
        ready = self.nodes.ready()
        return {
            "components": [
                {
                    "name": "kubernetes-api",
                    "address": self.api_url,
                    "healthy": True,
                    "detail": f"{len(self.store.list('pods'))} pods, revision {self.store.revision}",
                },
                {
                    "name": "controllers",
                    "address": "in-process",
                    "healthy": self.controllers._thread.is_alive(),
                    "detail": f"{self.controllers.passes} passes, workloads ready: {self.workloads_ready()}",
                },
                {
                    "name": "nodes",
                    "address": f"{len(ready)} nodes",
                    "healthy": all(ready.values()),
                    "detail": ", ".join(n for n, ok in ready.items() if not ok) or "all Ready",
                },
                {
                    "name": "talos-apid",
                    "address": f"127.0.0.1:{self.apid.port}",
                    "healthy": True,
                    "detail": _talos_summary(self.talos.snapshot()),
                },
                *({"detail": "", **c} for c in self.metrics.status()),
                *(self.collectors.status() if self.collectors is not None else []),
            ],
            "talos": self.talos.snapshot(),
            "files": self.files(),
            "api_faults": self.server.faults.as_dict(),
            "api_requests": self.server.requests.summary(),
        }

    def fault(self, request: dict) -> dict:
        target = request.get("target")
        if target == "api":
            self.server.faults.set(request)
            return self.server.faults.active().as_dict()
        if target == "node":
            node = request.get("node", "")
            if request.get("kind") in (None, "", "clear"):
                self.talos.clear_fault(node)
            else:
                params = {k: float(v) for k, v in request.items() if k in ("seconds",)}
                self.talos.inject_fault(node, request["kind"], **params)
            return self.talos.snapshot().get(node, {})
        if target == "pod":
            namespace, name = request.get("namespace", self.config.namespace), request.get("name", "")
            if self.store.get("pods", namespace, name) is None:
                raise ValueError(f"no pod {namespace}/{name}")
            kind = request.get("kind", "unready")
            if kind not in ("unready", "clear"):
                raise ValueError(f"unknown pod fault {kind!r}; known: unready, clear")
            self.controllers.set_unready(namespace, name, kind == "unready")
            return {"pod": f"{namespace}/{name}", "unready": kind == "unready"}
        if target == "mimir":
            if "down" in request:
                self.metrics.mimir.set_down(str(request["down"]).lower() in ("1", "true", "yes"))
            if "latency" in request:
                self.metrics.mimir.set_latency(float(request["latency"]))
            if "auth" in request:
                self.metrics.mimir.set_required_auth(str(request["auth"]))
            return {"mimir": self.metrics.mimir.url, "auth_required": self.metrics.mimir.required_auth is not None}
        raise ValueError(f"unknown fault target {target!r}")


def lab_bin() -> Path:
    return Path(__file__).resolve().parent / "bin"


def _talos_summary(snapshot: dict) -> str:
    states: dict[str, int] = {}
    for node in snapshot.values():
        states[node["state"]] = states.get(node["state"], 0) + 1
    metrics = sum(1 for node in snapshot.values() if node["metrics_address"])
    return ", ".join(f"{n} {state}" for state, n in sorted(states.items())) + f"; containerd metrics on {metrics}"


class _LabHooks:
    """What a Talos node's reboot or CRI restart means for Kubernetes and the metrics plane."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab

    def node_going_down(self, node: str) -> None:
        self.lab.nodes.set_ready(node, False)

    def node_came_up(self, node: str) -> None:
        boot_id = self.lab.talos.snapshot().get(node, {}).get("boot_id", "")
        self.lab.controllers.restart_containers(node)
        self.lab.nodes.set_ready(node, True, boot_id=boot_id)

    def cri_restarted(self, node: str) -> None:
        self.lab.controllers.restart_containers(node)

    def containerd_metrics_changed(self, node: str, address: str | None) -> None:
        self.lab.metrics.set_containerd_address(node, address)

    def kubernetes_nodes_ready(self) -> dict[str, bool]:
        return self.lab.nodes.ready()


def _write_secret(path: Path, text: str) -> None:
    """Write a private file atomically: readers never see it half written."""
    partial = path.with_name(f".{path.name}.partial")
    partial.touch(mode=0o600)
    partial.chmod(0o600)
    partial.write_text(text)
    partial.replace(path)


class _ControlServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, lab: Lab) -> None:
        super().__init__(("127.0.0.1", 0), _ControlHandler)
        self.lab = lab


class _ControlHandler(BaseHTTPRequestHandler):
    server: _ControlServer

    def log_message(self, format: str, *args) -> None:
        pass

    def _reply(self, code: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _allowed(self) -> bool:
        return self.headers.get("Authorization") == f"Bearer {self.server.lab.control_token}"

    def do_GET(self) -> None:
        if not self._allowed():
            self._reply(401, {"error": "unauthorized"})
        elif self.path == "/status":
            self._reply(200, self.server.lab.status())
        else:
            self._reply(404, {"error": "not found"})

    def do_POST(self) -> None:
        if not self._allowed():
            self._reply(401, {"error": "unauthorized"})
            return
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        try:
            if self.path == "/fault":
                self._reply(200, self.server.lab.fault(body))
            else:
                self._reply(404, {"error": "not found"})
        except ValueError as exc:
            self._reply(400, {"error": str(exc)})


def serve(config: LabConfig) -> None:
    """Run the lab in the foreground until SIGTERM or SIGINT."""
    lab = Lab(config)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    lab.start()
    state_path = config.run_dir / STATE_FILE
    try:
        lab.wait_settled(stop)
        if not stop.is_set():
            state = json.loads(state_path.read_text())
            state["ready"] = True
            _write_secret(state_path, json.dumps(state, indent=2))
            stop.wait()
    finally:
        lab.stop()
        state_path.unlink(missing_ok=True)
