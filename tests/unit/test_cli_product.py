"""The CLI as a product: help on every option, --version, readable refusals (no tracebacks, no escapes)."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from creditops import __version__, cli


def _parsers(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    found = [(parser.prog, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found += _parsers(sub)
    return found


def test_every_option_and_command_has_help() -> None:
    missing = []
    for prog, parser in _parsers(cli.build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                missing += [f"{prog} {c.dest}" for c in action._choices_actions if not c.help]
            elif action.option_strings and not action.help:
                missing.append(f"{prog} {action.option_strings[0]}")
    assert not missing, missing


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"creditops {__version__}"


def test_audit_verify_refuses_a_missing_database(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "nope.db"
    assert cli.main(["audit", "verify", "--url", f"sqlite:///{db}"]) == 2
    out = capsys.readouterr().out
    assert "no audit log at" in out and "Traceback" not in out
    assert not db.exists()  # verification never creates a log
    pg = "postgresql://postgres@127.0.0.1:5432/creditops_no_such_database_here"
    assert cli.main(["audit", "verify", "--url", pg]) == 2
    assert "cannot open the audit database" in capsys.readouterr().out


def test_audit_verify_refuses_a_missing_anchor(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    from creditops.governance.audit import AuditLog

    AuditLog.open(f"sqlite:///{tmp_path}/a.db").close()
    code = cli.main(
        ["audit", "verify", "--url", f"sqlite:///{tmp_path}/a.db", "--anchor", str(tmp_path / "x")]
    )
    assert code == 2 and "anchor file not found" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["ingest", "--source", "spec"], "--source spec needs --spec"),
        (["train", "--source", "spec", "--spec", "/nonexistent/spec.yaml"], "dataset spec not found"),
    ],
)
def test_spec_problems_are_one_line(tmp_path, argv: list[str], message: str) -> None:
    # a subprocess: stdout is a pipe (not a terminal), as in CI logs
    done = subprocess.run(
        [sys.executable, "-m", "creditops.cli", *argv],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 2
    assert message in done.stdout and "Traceback" not in done.stdout + done.stderr
    assert "\x1b[" not in done.stdout + done.stderr
    assert len(done.stdout.strip().splitlines()) == 1


def test_help_reads_like_a_product() -> None:
    done = subprocess.run([sys.executable, "-m", "creditops.cli", "--help"], capture_output=True, text=True)
    assert done.returncode == 0
    assert "Credit-scoring MLOps platform" in done.stdout and "--version" in done.stdout
    assert "\x1b[" not in done.stdout
