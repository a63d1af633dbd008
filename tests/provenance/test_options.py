"""One switch per capture: configure() and the environment variables, typed
errors for bad values (changing nothing), and the lines of ``autolog status``."""

from __future__ import annotations

import pytest

from autolog import provenance
from autolog.cli import main
from autolog.errors import InvalidParameterError


def test_defaults_capture_everything_cheap_and_leave_system_metrics_off():
    current = provenance.options()
    assert current["git"] and current["git_diff"] and current["requirements"]
    assert current["system_metrics"] is False


def test_environment_variables_set_each_switch(monkeypatch):
    monkeypatch.setenv("AUTOLOG_CAPTURE_GIT_DIFF", "0")
    monkeypatch.setenv("AUTOLOG_CAPTURE_MAX_DIFF_BYTES", "5000")
    monkeypatch.setenv("AUTOLOG_SYSTEM_METRICS", "true")
    current = provenance.options()
    assert current["git_diff"] is False
    assert current["max_diff_bytes"] == 5000
    assert current["system_metrics"] is True


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"gti": True}, "gti"),
        ({"git": "maybe"}, "git"),
        ({"max_diff_bytes": -1}, "max_diff_bytes"),
        ({"system_metrics_interval": "soon"}, "system_metrics_interval"),
        ({"env_vars": [1, 2]}, "env_vars"),
    ],
)
def test_bad_options_raise_a_typed_error_naming_them_and_change_nothing(changes, named):
    before = provenance.options()
    with pytest.raises(InvalidParameterError, match=named):
        provenance.configure(**{"command": False, **changes})
    assert provenance.options() == before


def test_a_bad_environment_value_names_the_variable(monkeypatch):
    monkeypatch.setenv("AUTOLOG_SYSTEM_METRICS_INTERVAL", "often")
    with pytest.raises(InvalidParameterError, match="AUTOLOG_SYSTEM_METRICS_INTERVAL"):
        provenance.options()


def test_status_lists_each_capture_its_state_and_cost(capsys):
    provenance.configure(git_diff=False)
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    for name in provenance.CAPTURES:
        assert name in lines, name
    assert lines["git_diff"].split()[1] == "false"
    assert lines["system_metrics"].split()[1] == "false"
    assert provenance.CAPTURES["requirements"][3] in lines["requirements"]
