"""`talosctl reboot` and `talosctl health`: nodes going down, coming back, and the cluster checks."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field

from lab.talos import health
from lab.talos.node import ApplyError
from lab.talos.session import CommandError, ReportedError, Session, UnreachableNodeError


def reboot(session: Session) -> None:
    targets = session.targets()
    session.warn_about_older_nodes(targets)
    if not (session.flag("wait") or session.flag("debug") or session.invocation.values.get("drain")):
        for target in targets:
            with session.cluster.locked():
                try:
                    node = session.reach(target)
                except UnreachableNodeError as exc:
                    raise CommandError(f"error executing reboot: 1 error occurred:\n\t* {target}: {exc}\n\n") from None
                name = node.name
            try:
                session.cluster.reboot(name)
            except ApplyError as exc:
                raise CommandError(f"error executing reboot: 1 error occurred:\n\t* {target}: {exc}\n\n") from None
        return
    deadline = time.monotonic() + session.flag("timeout")
    progress = _Progress(session)
    threads = [threading.Thread(target=_track_reboot, args=(session, target, deadline, progress)) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if progress.failed:
        raise ReportedError()


@dataclass
class _Progress:
    session: Session
    failed: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def line(self, node: str, message: str, failed: bool = False) -> None:
        with self.lock:
            self.session.err(f'"{node}": {message}\n')
            self.failed = self.failed or failed


def _track_reboot(session: Session, target: str, deadline: float, progress: _Progress) -> None:
    """The action tracker: issue the reboot, follow its events, then check the boot id changed."""
    progress.line(target, "waiting for actor ID")
    with session.cluster.locked():
        try:
            node = session.reach(target)
        except UnreachableNodeError as exc:
            progress.line(target, str(exc), failed=True)
            return
        name = node.name
    try:
        old_boot_id = session.cluster.reboot(name)
    except ApplyError as exc:
        progress.line(target, str(exc), failed=True)
        return
    progress.line(target, f"actor ID: {uuid.uuid4()}")
    progress.line(target, "sequence: reboot action: START")
    progress.line(target, "task: stopAllServices action: START")
    progress.line(target, "unavailable, retrying...")
    if not session.cluster.wait_for_boot(name, old_boot_id, deadline):
        progress.line(target, "context deadline exceeded", failed=True)
        return
    progress.line(target, 'stage: BOOTING ready: false unmetCond: [name:"nodeReady" reason:"node not ready"]')
    progress.line(target, "events check condition met")
    progress.line(target, "post check passed")


# --- health ----------------------------------------------------------------------------


def health_check(session: Session) -> None:
    targets = session.targets()
    if not session.flag("server"):
        raise CommandError("client-side health checks need a kubeconfig; run with --server (the default)")
    if len(targets) > 1:
        raise CommandError('command "health" is not supported with multiple nodes')
    with session.cluster.locked():
        try:
            session.reach(targets[0])
        except UnreachableNodeError as exc:
            raise CommandError(str(exc)) from None
    checker = health.HealthCheck(
        session.cluster,
        control_planes=list(session.flag("control-plane-nodes")) + _list(session.flag("init-node")),
        workers=list(session.flag("worker-nodes")),
        report=lambda line: session.err(line + "\n"),
    )
    if not checker.wait(time.monotonic() + session.flag("wait-timeout")):
        raise CommandError("rpc error: code = DeadlineExceeded desc = context deadline exceeded")


def _list(value: str | None) -> list[str]:
    return [value] if value else []
