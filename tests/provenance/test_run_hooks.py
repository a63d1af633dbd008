"""Provenance in the tracking API's run hooks: once imported, its own functions
stand where the package's stand-ins were, each run reads the options at most
once, and the tags a run gets follow configure()."""

from __future__ import annotations

import autolog
from autolog import provenance
from autolog.tracking import run_hooks


def _tags(run_id: str) -> dict[str, str]:
    return autolog.get_run(run_id).data.tags


def test_provenance_takes_the_place_of_the_stand_ins():
    with autolog.start_run():
        pass
    assert provenance.system_tags in run_hooks.tag_sources
    assert provenance.run_started in run_hooks.run_started_hooks
    assert not [h for h in run_hooks.tag_sources if h.__qualname__.startswith("lazy(")]
    assert not [h for h in run_hooks.run_started_hooks if h.__qualname__.startswith("lazy(")]


def test_a_lazy_stand_in_imports_its_target_at_the_first_call_and_steps_aside():
    saved = list(run_hooks.tag_sources)
    try:
        stand_in = run_hooks.lazy("colorsys:rgb_to_hsv")
        run_hooks.tag_sources[:0] = [stand_in]
        assert stand_in(1.0, 0.0, 0.0) == (0.0, 1.0, 1.0)
        import colorsys

        assert run_hooks.tag_sources == [colorsys.rgb_to_hsv, *saved]
    finally:
        run_hooks.tag_sources[:] = saved


def test_replace_puts_the_new_hook_in_the_same_place_and_ignores_the_unknown():
    def first() -> dict[str, str]:
        return {}

    def second() -> dict[str, str]:
        return {}

    saved = list(run_hooks.tag_sources)
    try:
        run_hooks.tag_sources[:0] = [first]
        run_hooks.replace(first, second)
        assert run_hooks.tag_sources == [second, *saved]
        run_hooks.replace(first, second)  # gone: nothing changes
        run_hooks.replace(None, second)
        assert run_hooks.tag_sources == [second, *saved]
    finally:
        run_hooks.tag_sources[:] = saved


def test_a_run_reads_the_options_at_most_once(monkeypatch):
    with autolog.start_run():  # the first run computes what later ones reuse
        pass
    calls = []
    read = provenance.options

    def counted():
        calls.append(1)
        return read()

    monkeypatch.setattr(provenance, "options", counted)
    with autolog.start_run() as parent:
        for _ in range(3):
            with autolog.start_run(nested=True):
                pass
    assert len(calls) <= 4, calls  # four runs
    assert _tags(parent.info.run_id)["autolog.source.command"]


def test_the_tags_of_a_run_follow_configure():
    with autolog.start_run() as first:
        pass
    provenance.configure(command=False)
    with autolog.start_run() as second:
        pass
    provenance.configure(command=True)
    with autolog.start_run() as third:
        pass
    assert provenance.COMMAND in _tags(first.info.run_id)
    assert provenance.COMMAND not in _tags(second.info.run_id)
    assert (
        _tags(third.info.run_id)[provenance.COMMAND] == _tags(first.info.run_id)[provenance.COMMAND]
    )


def test_system_tags_are_the_run_tags_with_the_commit():
    assert provenance.system_tags() == {**provenance.run_tags(), **provenance.commit_tag()}
    with autolog.start_run() as run:
        pass
    tags = _tags(run.info.run_id)
    assert {k: tags[k] for k in provenance.system_tags()} == provenance.system_tags()
