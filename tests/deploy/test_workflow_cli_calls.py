"""Every ``creditops ...`` call in the GitHub workflows parses with the real CLI parser (none invented).

The run scripts are read the way bash would split them: continuation lines joined, array assignments
(``kube=(...)``) expanded where ``"${kube[@]}"`` is used, other variables and ``${{ }}`` expressions replaced
by a value that fits any option (``1``). argparse then either resolves a command or exits with its error.
"""

from __future__ import annotations

import re
import shlex

import pytest
import yaml
from deploy_helpers import ROOT

from creditops.cli import build_parser

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
SEPARATORS = ("&&", "||", "|", ";", "do", "then")
ARRAY = re.compile(r"^\s*(\w+)=\((.*)\)\s*$")


def creditops_calls(script: str) -> list[list[str]]:
    """The argument lists of the ``creditops`` calls in a bash script."""
    script = re.sub(r"\$\{\{[^}]*\}\}", "1", script.replace("\\\n", " "))
    arrays: dict[str, list[str]] = {}
    calls = []
    for line in script.splitlines():
        if m := ARRAY.match(line):
            arrays[m.group(1)] = shlex.split(m.group(2))
            continue
        if "creditops " not in line:
            continue
        words: list[str] = []
        for word in shlex.split(line, comments=True):
            if m := re.fullmatch(r"\$\{(\w+)\[@\]\}", word):
                words += arrays[m.group(1)]
            else:
                words.append(re.sub(r"\$\{?\w+\}?", "1", word))
        for i, word in enumerate(words):
            command_position = i == 0 or words[i - 1] in SEPARATORS
            if word.endswith("/creditops") or (word == "creditops" and command_position):
                end = next((j for j in range(i + 1, len(words)) if words[j] in SEPARATORS), None)
                calls.append(words[i + 1 : end])
    return calls


CALLS = [
    (f"{path.name}:{job}:{n}", call)
    for path in WORKFLOWS
    for job, spec in yaml.safe_load(path.read_text())["jobs"].items()
    for n, step in enumerate(spec.get("steps", []))
    for call in creditops_calls(step.get("run", ""))
]


def test_the_cd_workflows_call_the_cli() -> None:
    """The parse check below has something to check: the CD commands were found in the scripts."""
    calls = [" ".join(c[2:] if c[:1] == ["--config"] else c) for _, c in CALLS]  # the global option first
    for command in ("rollout kube status", "rollout kube start", "rollout kube step", "rollout kube promote",
                    "rollout kube rollback", "rollout kube run", "deploy smoke",
                    "deploy history"):  # fmt: skip
        assert any(c.startswith(command + " ") for c in calls), (command, calls)


@pytest.mark.parametrize(("where", "argv"), CALLS, ids=[w for w, _ in CALLS])
def test_workflow_call_parses(where: str, argv: list[str]) -> None:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        pytest.fail(f"{where}: `creditops {' '.join(argv)}` does not parse (exit {exc.code})")
    assert callable(args.func)


def test_an_invented_command_is_caught(capsys: pytest.CaptureFixture[str]) -> None:
    """The check above can fail: the call that used to be in cd_production.yml does not parse."""
    (call,) = creditops_calls(
        ".venv/bin/creditops rollout status --target kubernetes --namespace creditops --isvc x --require-idle"
    )
    with pytest.raises(SystemExit):
        build_parser().parse_args(call)
    assert "invalid choice: 'status'" in capsys.readouterr().err
