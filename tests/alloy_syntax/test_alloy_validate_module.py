"""The alloy_validate module's main(), with exit_json/fail_json turned into exceptions."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any
from unittest import mock

import alloy_validate
import pytest
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

VALID = 'loki.write "out" {\n  endpoint {\n    url = "http://loki/loki/api/v1/push"\n  }\n}\n'


class ModuleExitError(Exception):
    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__(result)
        self.result = result


class ModuleFailError(ModuleExitError):
    pass


def run_module(args: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    def exit_json(_module: basic.AnsibleModule, **result: Any) -> None:
        raise ModuleExitError(result)

    def fail_json(_module: basic.AnsibleModule, **result: Any) -> None:
        raise ModuleFailError(result)

    with (
        patch_module_args(args),
        mock.patch.object(basic.AnsibleModule, "exit_json", exit_json),
        mock.patch.object(basic.AnsibleModule, "fail_json", fail_json),
    ):
        try:
            alloy_validate.main()
        except ModuleFailError as failure:
            return "failed", failure.result
        except ModuleExitError as success:
            return "ok", success.result
    raise AssertionError("the module returned without exit_json or fail_json")


@pytest.fixture
def no_alloy_on_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


@pytest.mark.usefixtures("no_alloy_on_path")
def test_valid_directory_passes_unchanged_in_check_mode(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "main.alloy").write_text(VALID)
    status, result = run_module({"path": str(config), "_ansible_check_mode": True})
    assert status == "ok"
    assert result["changed"] is False
    assert result["errors"] == [] and result["alloy_binary"] is None
    assert result["files"] == [str(config / "main.alloy")]


@pytest.mark.usefixtures("no_alloy_on_path")
def test_errors_fail_the_task_with_alloy_lines(tmp_path: Path) -> None:
    path = tmp_path / "main.alloy"
    path.write_text('loki.write "out" {\n  endpoint {}\n}\nlocal.missing "x" {}\n')
    status, result = run_module({"path": str(path)})
    assert status == "failed"
    assert result["msg"].splitlines() == [
        f'{path}:2:3: missing required attribute "url"',
        f'{path}:4:1: cannot find the definition of component name "local.missing"',
    ]
    assert result["errors"][0] == {
        "file": str(path),
        "line": 2,
        "column": 3,
        "message": 'missing required attribute "url"',
    }
    assert result["changed"] is False


@pytest.mark.usefixtures("no_alloy_on_path")
def test_syntax_only_ignores_semantic_problems(tmp_path: Path) -> None:
    path = tmp_path / "main.alloy"
    path.write_text('local.missing "x" {}\n')
    assert run_module({"path": str(path), "syntax_only": True})[0] == "ok"
    path.write_text("local.missing 'x' {}\n")
    status, result = run_module({"path": str(path), "syntax_only": True})
    assert status == "failed"
    assert "1:15: illegal single-quoted string; use double quotes" in result["msg"]


@pytest.mark.usefixtures("no_alloy_on_path")
def test_warnings_are_returned_and_do_not_fail(tmp_path: Path) -> None:
    path = tmp_path / "main.alloy"
    path.write_text('local.file "f" {\n  filename = env("HOME")\n}\n')
    status, result = run_module({"path": str(path)})
    assert status == "ok"
    assert [(w["line"], w["column"]) for w in result["alloy_warnings"]] == [(2, 14)]
    assert result["alloy_warnings"][0]["message"].startswith("this stdlib function is deprecated")


def write_fake_alloy(directory: Path, validate_exit: int) -> Path:
    """An `alloy` stand-in that records its arguments and fails `validate` when asked to."""
    directory.mkdir()
    script = directory / "alloy"
    log = directory / "calls.jsonl"
    script.write_text(
        "#!/bin/sh\n"
        f"printf '%s\\n' \"$*\" >> {log}\n"
        'if [ "$1" = validate ]; then\n'
        f'  echo "Error: main.alloy:1:1: from the real alloy" >&2; exit {validate_exit}\nfi\n'
        "exit 0\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return log


def test_real_alloy_binary_is_run_and_its_verdict_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = write_fake_alloy(tmp_path / "bin", validate_exit=1)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    path = tmp_path / "main.alloy"
    path.write_text(VALID)
    status, result = run_module({"path": str(path)})
    assert status == "failed"
    report = result["alloy_binary"]
    assert report["fmt"] == {"rc": 0, "stderr": ""}
    assert report["validate"] == {"rc": 1, "stderr": "Error: main.alloy:1:1: from the real alloy"}
    assert log.read_text().splitlines() == [f"fmt {path}", f"validate {path}"]
    json.dumps(result)  # the result must be serialisable as Ansible returns it


def test_real_alloy_binary_only_formats_in_syntax_only_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = write_fake_alloy(tmp_path / "bin", validate_exit=1)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    path = tmp_path / "main.alloy"
    path.write_text(VALID)
    status, result = run_module({"path": str(path), "syntax_only": True})
    assert status == "ok"
    assert result["alloy_binary"]["validate"] is None
    assert log.read_text().splitlines() == [f"fmt {path}"]


@pytest.mark.usefixtures("no_alloy_on_path")
def test_content_is_installed_only_once_it_validates(tmp_path: Path) -> None:
    dest = tmp_path / "config"
    dest.mkdir()
    (dest / "old.alloy").write_text("// a disabled feature\n")
    (dest / "NOTES.txt").write_text("kept\n")

    status, result = run_module({"content": {"main.alloy": VALID}, "dest": str(dest)})

    assert status == "ok", result
    assert (result["changed"], result["written"], result["removed"]) == (True, ["main.alloy"], ["old.alloy"])
    assert sorted(p.name for p in dest.iterdir()) == ["NOTES.txt", "main.alloy"]
    assert (dest / "main.alloy").read_text() == VALID
    assert stat.S_IMODE((dest / "main.alloy").stat().st_mode) == 0o644
    status, again = run_module({"content": {"main.alloy": VALID}, "dest": str(dest)})
    assert (status, again["changed"], again["written"], again["removed"]) == ("ok", False, [], [])


@pytest.mark.usefixtures("no_alloy_on_path")
def test_invalid_content_installs_nothing(tmp_path: Path) -> None:
    dest = tmp_path / "config"
    broken = VALID.replace("url =", "ur1 =")

    status, result = run_module({"content": {"main.alloy": broken}, "dest": str(dest)})

    assert status == "failed"
    assert "main.alloy:" in result["msg"]
    assert not dest.exists()


@pytest.mark.usefixtures("no_alloy_on_path")
def test_check_mode_reports_the_install_and_writes_nothing(tmp_path: Path) -> None:
    dest = tmp_path / "config"

    status, result = run_module({"content": {"main.alloy": VALID}, "dest": str(dest), "_ansible_check_mode": True})

    assert (status, result["changed"], result["written"]) == ("ok", True, ["main.alloy"])
    assert result["diff"][0]["after"] == VALID
    assert not dest.exists()


def test_content_names_must_be_plain_alloy_files(tmp_path: Path) -> None:
    status, result = run_module({"content": {"../escape.alloy": VALID}, "dest": str(tmp_path)})
    assert status == "failed"
    assert "'../escape.alloy'" in result["msg"]
