"""Talos versions and the behaviour that changes with them."""

from __future__ import annotations

import re
from dataclasses import dataclass

_VERSION = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)$")

# Kubernetes version each Talos minor installs by default (used for image tags only).
_KUBERNETES_BY_MINOR = {12: "v1.34.1", 13: "v1.35.0", 14: "v1.35.2", 15: "v1.36.0"}


@dataclass(frozen=True, order=True)
class TalosVersion:
    """A Talos release, compared numerically."""

    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text: str) -> TalosVersion:
        match = _VERSION.match(text.strip())
        if not match:
            raise ValueError(f"not a Talos version: {text!r}")
        return cls(*(int(part) for part in match.groups()))

    def __str__(self) -> str:
        return f"v{self.major}.{self.minor}.{self.patch}"

    def at_least(self, major: int, minor: int) -> bool:
        return (self.major, self.minor) >= (major, minor)

    @property
    def has_cri_customization_document(self) -> bool:
        """From 1.14 a CRICustomizationConfig document restarts CRI live."""
        return self.at_least(1, 14)

    @property
    def accepts_reboot_apply_mode(self) -> bool:
        """1.14 dropped the REBOOT apply mode on the server side."""
        return not self.at_least(1, 14)

    @property
    def patch_modes(self) -> tuple[str, ...]:
        """The `--mode` values `talosctl patch` of this version offers."""
        if self.at_least(1, 14):
            return ("auto", "no-reboot", "staged", "try")
        return ("auto", "no-reboot", "reboot", "staged", "try")

    @property
    def reboot_has_drain(self) -> bool:
        return self.at_least(1, 15)

    @property
    def kubernetes_version(self) -> str:
        return _KUBERNETES_BY_MINOR.get(self.minor, "v1.35.0")
