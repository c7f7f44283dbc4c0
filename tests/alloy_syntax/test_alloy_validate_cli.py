"""bin/alloy-validate as users and ansible.builtin.template run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLI = ROOT / "bin" / "alloy-validate"
VALID = 'loki.write "out" {\n  endpoint {\n    url = "http://loki/loki/api/v1/push"\n  }\n}\n'
INVALID = 'loki.write "out" {\n  endpoint {\n    url = "http://loki"\n    tenant = "x"\n  }\n}\n'


def run_cli(*args: str, direct: bool = False) -> subprocess.CompletedProcess[str]:
    command = [str(CLI), *args] if direct else [sys.executable, str(CLI), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def test_valid_directory_exits_zero_silently(tmp_path: Path) -> None:
    (tmp_path / "main.alloy").write_text(VALID)
    completed = run_cli(str(tmp_path))
    assert (completed.returncode, completed.stdout, completed.stderr) == (0, "", "")


def test_errors_go_to_stderr_as_file_line_column_message(tmp_path: Path) -> None:
    good = tmp_path / "good.alloy"
    good.write_text(VALID)
    bad = tmp_path / "bad.alloy"
    bad.write_text(INVALID)
    completed = run_cli(str(good), str(bad))
    assert completed.returncode == 1
    assert completed.stderr.splitlines() == [f'{bad}:4:5: unrecognized attribute name "tenant"']


def test_syntax_only_checks_what_alloy_fmt_checks(tmp_path: Path) -> None:
    path = tmp_path / "main.alloy"
    path.write_text(INVALID)
    assert run_cli("--syntax-only", str(path)).returncode == 0
    path.write_text("# not a comment in Alloy\n")
    completed = run_cli("--syntax-only", str(path))
    assert completed.returncode == 1
    assert completed.stderr.splitlines()[0] == f"{path}:1:1: illegal character U+0023 '#'"


def test_runs_directly_through_its_shebang(tmp_path: Path) -> None:
    path = tmp_path / "main.alloy"
    path.write_text(INVALID)
    completed = run_cli(str(path), direct=True)
    assert completed.returncode == 1
    assert completed.stderr.startswith(f"{path}:4:5: ")


def template_task(name: str, directory: Path) -> dict[str, object]:
    return {
        "ansible.builtin.template": {
            "src": f"{name}.alloy.j2",
            "dest": str(directory / f"{name}.alloy"),
            "validate": f"{CLI} %s",
        },
        "register": name,
        "ignore_errors": True,
    }


def test_works_as_the_validate_command_of_ansible_template(tmp_path: Path) -> None:
    (tmp_path / "good.alloy.j2").write_text(VALID)
    (tmp_path / "bad.alloy.j2").write_text(INVALID)
    results = tmp_path / "results.json"
    tasks = [
        template_task("good", tmp_path),
        template_task("bad", tmp_path),
        {
            "ansible.builtin.copy": {
                "content": "{{ {'good': good, 'bad': bad} | to_json }}",
                "dest": str(results),
            }
        },
    ]
    playbook = tmp_path / "play.yml"
    playbook.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]))
    ansible_playbook = str(Path(sys.executable).parent / "ansible-playbook")
    completed = subprocess.run(
        [ansible_playbook, "-i", "localhost,", "-c", "local", str(playbook)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
        env={**os.environ, "ANSIBLE_PYTHON_INTERPRETER": sys.executable},
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    outcome = json.loads(results.read_text())
    assert outcome["good"].get("failed") is not True and (tmp_path / "good.alloy").read_text() == VALID
    assert outcome["bad"]["failed"] is True and not (tmp_path / "bad.alloy").exists()
    assert 'unrecognized attribute name "tenant"' in outcome["bad"]["stderr"]
