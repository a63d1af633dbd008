"""The UI in a real headless Chromium: every page shows what the store holds."""

from __future__ import annotations

import json
import time

from autolog.errors import InvalidFilterError
from autolog.tracking.entities import Metric, RunStatus
from autolog.tracking.search import parse_filter
from tests.ui.conftest import CSV_ROWS, XSS_NAME

ROWS_JS = (
    "[...document.querySelectorAll('#runs-body tr')].map(r => r.querySelector('.run-name')"
    "?.textContent)"
)


def rows(page) -> list[str]:
    return page.eval(ROWS_JS)


def test_experiments_page_lists_experiments_with_run_counts(page, server, data):
    page.goto(server.url)
    page.wait("#experiments tbody tr[data-id]")
    shown = page.eval(
        "[...document.querySelectorAll('#experiments tbody tr')].map(r => "
        "[...r.querySelectorAll('td')].slice(1, 3).map(td => td.textContent))"
    )
    counts = {
        e.name: len(data.store.search_runs([e.experiment_id], max_results=1000))
        for e in data.store.search_experiments()
    }
    assert {name: int(n) for name, n in shown} == counts
    page.screenshot("experiments")
    page.fill("#exp-search", "spee")
    page.wait_for("document.querySelectorAll('#experiments tbody tr').length === 1")
    assert page.text("#experiments tbody tr a") == "speech"
    assert "q=spee" in page.eval("location.hash")


def test_runs_table_lists_and_sorts(page, server, data):
    page.goto(server.url + f"#/runs?e={data.exp}&cols=metrics.acc,params.lr")
    page.wait("#runs-body tr")
    top_level = {n for n in data.runs if not n.startswith("child-") and n != "speech-1"}
    assert set(rows(page)) == top_level
    for clicks, order in ((1, "DESC"), (2, "ASC")):
        page.click("th[data-col='metrics.acc']")
        expected = [
            r.info.run_name
            for r in data.store.search_runs(
                [data.exp], "tags.mlflow.parentRunId IS NULL", order_by=[f"metrics.acc {order}"]
            )
        ]
        want = json.dumps(json.dumps(expected, separators=(",", ":")))
        page.wait_for(f"JSON.stringify({ROWS_JS}) === {want}")
        accs = page.eval(
            "[...document.querySelectorAll('#runs-body tr')].map(r => +r.children[8].textContent)"
        )
        assert accs == sorted(accs, reverse=order == "DESC")
        assert ("desc=0" in page.eval("location.hash")) == (clicks == 2)
    page.screenshot("runs")


def test_runs_table_filters_and_keeps_the_filter_in_the_url(page, server, data):
    page.goto(server.url + f"#/runs?e={data.exp}")
    page.wait("#runs-body tr")
    text = "params.model = 'linear' OR metrics.acc >= 0.8"
    expected = {
        r.info.run_name
        for r in data.store.search_runs([data.exp], f"({text}) AND tags.mlflow.parentRunId IS NULL")
    }
    assert 1 < len(expected) < len(rows(page))
    page.fill("#filter", text)
    page.press("#filter", "Enter")
    page.wait_for(f"document.querySelectorAll('#runs-body tr').length === {len(expected)}")
    assert set(rows(page)) == expected
    # the link reproduces the view
    link = page.eval("location.href")
    page.goto("about:blank")
    page.goto(link)
    page.wait_for(f"document.querySelectorAll('#runs-body tr').length === {len(expected)}")
    assert set(rows(page)) == expected
    assert page.eval("document.querySelector('#filter').value") == text


def test_bad_filter_shows_the_error_at_its_position(page, server, data):
    bad = "metrics.acc > 0.5 AND (params.lr = 0.1"
    try:
        parse_filter(bad)
    except InvalidFilterError as exc:
        position = exc.position
    else:
        raise AssertionError("the filter should not parse")
    page.goto(server.url + f"#/runs?e={data.exp}")
    page.wait("#runs-body tr")
    page.fill("#filter", bad)
    page.press("#filter", "Enter")
    page.wait("#filter-error .caret")
    assert page.eval("document.querySelector('#filter-error').dataset.position") == str(position)
    assert page.text("#filter-error .caret") == " " * position + "^"
    assert "position" in page.text("#filter-error .msg")
    assert page.eval("document.querySelector('#filter').selectionStart") == position
    page.screenshot("runs-bad-filter")


def test_nested_runs_fold_under_their_parent(page, server, data):
    page.goto(server.url + f"#/runs?e={data.exp}")
    page.wait("#runs-body tr")
    assert not any(n.startswith("child-") for n in rows(page))
    grid = data.runs["grid"]
    assert page.text(f"button.fold[data-parent='{grid}']").strip() == "▸ 3"
    page.click(f"button.fold[data-parent='{grid}']")
    page.wait("#runs-body tr.child")
    children = page.texts("#runs-body tr.child .run-name")
    assert sorted(children) == ["child-0", "child-1", "child-2"]
    # the children follow their parent
    order = rows(page)
    at = order.index("grid")
    assert sorted(order[at + 1 : at + 4]) == sorted(children)
    assert f"open={grid}" in page.eval("location.hash")
    page.screenshot("runs-nested")


def test_a_matching_child_shows_with_its_parent_as_context(page, server, data):
    text = "attributes.run_name = 'child-1'"
    page.goto(server.url + f"#/runs?e={data.exp}&filter={text.replace(' ', '%20')}")
    page.wait("#runs-body tr.child")
    grid = data.runs["grid"]
    assert rows(page) == ["grid", "child-1"]  # the parent, unfolded, then its match
    assert page.eval(f"document.querySelector(\"tr[data-id='{grid}']\").className") == "context"
    assert page.text(f"button.fold[data-parent='{grid}']").strip() == "▾ 1"
    page.screenshot("runs-context-parent")
    page.click(f"button.fold[data-parent='{grid}']")  # folds it
    page.wait_for("document.querySelectorAll('#runs-body tr').length === 1")
    assert rows(page) == ["grid"]


def test_run_page_chart_draws_the_logged_points(page, server, data):
    run_id = data.runs["curves"]
    page.goto(server.url + f"#/run/{run_id}")
    page.wait_for("window.autologUI.charts.loss")
    drawn = page.eval("window.autologUI.charts.loss.series[0]")
    assert drawn["exact"] is True
    assert drawn["x"] == [s for s, _ in data.curve]
    assert drawn["last"] == [v for _, v in data.curve]
    # uPlot was handed exactly those points and drew on its canvas
    assert page.eval("window.autologUI.charts.loss.data[3].length") == len(data.curve)
    assert (
        page.eval(
            "(() => { const c = document.querySelector('.chart[data-key=loss] canvas');"
            " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
            " let ink = 0; for (let i = 3; i < d.length; i += 4) ink += d[i] > 0; return ink; })()"
        )
        > 1000
    )
    assert page.text("#params").count("lr") == 1
    assert "sklearn" in page.text("#run-name ~ .cols")
    page.screenshot("run")


def test_compare_overlays_two_runs_and_shows_only_differing_params(page, server, data):
    a, b = data.runs["curves"], data.runs["curves-b"]
    page.goto(server.url + f"#/compare?runs={a},{b}")
    page.wait_for(
        "window.autologUI.charts['loss:compare'] && window.autologUI.charts['acc:compare']"
    )
    params = page.eval(
        "[...document.querySelectorAll('#diff-params tbody tr')].map(r => r.dataset.param)"
    )
    pa, pb = data.store.get_run(a).data.params, data.store.get_run(b).data.params
    differing = sorted(k for k in set(pa) | set(pb) if pa.get(k) != pb.get(k))
    assert params == differing == ["lr"]  # both are cnn: model is not shown
    chart = page.eval("window.autologUI.charts['loss:compare']")
    assert chart["runs"] == [a, b]
    assert len(chart["data"]) == 3  # x and one line per run
    for i, run_id in enumerate((a, b)):
        logged = [(m.step, m.value) for m in data.store.get_metric_history(run_id, "loss")]
        assert list(zip(chart["data"][0], chart["data"][i + 1])) == logged
    page.wait("#parallel canvas")
    assert page.eval("window.autologUI.scatter.points.length") == 2
    page.screenshot("compare")


def test_image_and_csv_artifacts_preview(page, server, data):
    run_id = data.runs["curves"]
    page.goto(server.url + f"#/run/{run_id}")
    page.wait("#artifact-tree [data-path='plots']")
    page.click("#artifact-tree [data-path='plots']")
    page.click("#artifact-tree [data-path='plots/confusion.png']")
    page.wait_for("document.querySelector('img.artifact-image')?.complete")
    size = page.eval(
        "(() => { const i = document.querySelector('img.artifact-image');"
        " return [i.naturalWidth, i.naturalHeight]; })()"
    )
    assert size == [37, 23]
    page.screenshot("artifact-image")
    page.click("#artifact-tree [data-path='data']")
    page.click("#artifact-tree [data-path='data/table.csv']")
    page.wait("table.csv")
    cells = page.eval(
        "[...document.querySelectorAll('table.csv tr')].map(r => "
        "[...r.children].map(c => c.textContent))"
    )
    assert cells == CSV_ROWS
    page.screenshot("artifact-csv")
    page.click("#artifact-tree [data-path='model']")
    page.click("#artifact-tree [data-path='model/model.json']")
    page.wait("pre.model-json")
    assert json.loads(page.text("pre.model-json")) == {"flavor": "sklearn", "version": "1.5"}


def test_html_artifact_runs_only_in_a_sandboxed_iframe(page, server, data):
    run_id = data.runs["curves"]
    page.goto(server.url + f"#/run/{run_id}")
    page.wait("#artifact-tree [data-path='plot.html']")
    title = page.eval("document.title")
    page.click("#artifact-tree [data-path='plot.html']")
    page.wait("iframe.artifact-html")
    assert page.eval("document.querySelector('iframe.artifact-html').getAttribute('sandbox')") == (
        "allow-scripts"
    )
    page.wait_for("document.querySelector('iframe.artifact-html').contentWindow.length === 0")
    # its script ran in an opaque origin: it could not reach our page
    page.wait_for("document.readyState === 'complete'")
    assert page.eval("document.title") == title
    # the frame's error reaches the driver on its own time (under load, after
    # the page is complete): wait for it, taking every error seen meanwhile
    blocked: list[str] = []
    deadline = time.monotonic() + 15
    while not any('Blocked a frame with origin "null"' in e for e in blocked):
        assert time.monotonic() < deadline, blocked
        time.sleep(0.05)
        blocked += page.events(clear=True)["errors"]
    assert page.eval("document.title") == title


def test_xss_run_name_renders_as_text(page, server, data):
    run_id = data.runs[XSS_NAME]
    page.goto(server.url + f"#/runs?e={data.exp}")
    page.wait(f"#runs-body tr[data-id='{run_id}']")
    assert page.text(f"#runs-body tr[data-id='{run_id}'] .run-name") == XSS_NAME
    assert page.eval("document.querySelectorAll('#runs-body img').length") == 0
    page.goto(server.url + f"#/run/{run_id}")
    page.wait("#run-name")
    assert page.text("#run-name") == XSS_NAME
    assert page.eval("document.querySelectorAll('main img').length") == 0
    page.screenshot("run-xss")


def test_a_live_runs_chart_grows_while_it_logs(page, server, data):
    store = data.store
    t0 = 1_700_000_000_000
    run_id = store.create_run(data.live, "alice", t0, run_name="live").info.run_id

    def log(steps):
        store.log_batch(run_id, [Metric("loss", 1.0 / (s + 1), t0 + s, s) for s in steps])

    log(range(5))
    page.goto(server.url + f"#/run/{run_id}")
    page.wait_for("window.autologUI.charts.loss?.series[0].n === 5")
    for steps in (range(5, 20), range(20, 40)):
        log(steps)
        # no reload: the page polls while the run is RUNNING
        page.wait_for(f"window.autologUI.charts.loss.series[0].n === {steps[-1] + 1}", 10000)
        assert page.eval("window.autologUI.charts.loss.series[0].x.at(-1)") == steps[-1]
    page.screenshot("run-live")
    store.update_run_info(run_id, RunStatus.FINISHED, t0 + 100_000)
    page.wait_for("document.querySelector('#run-status').textContent === 'FINISHED'", 10000)


def test_the_runs_table_updates_while_a_run_logs(page, server, data):
    store = data.store
    t0 = 1_700_000_000_000
    run_id = store.create_run(data.live, "alice", t0, run_name="live-table").info.run_id
    store.log_batch(run_id, [Metric("loss", 0.5, t0, 0)])
    page.goto(server.url + f"#/runs?e={data.live}&cols=metrics.loss")
    cell = f"#runs-body tr[data-id='{run_id}'] td:nth-child(9)"
    page.wait(cell)
    assert page.text(cell) == "0.5"
    store.log_batch(run_id, [Metric("loss", 0.25, t0 + 1, 1)])
    page.wait_for(f"document.querySelector(\"{cell}\").textContent === '0.25'", 10000)
    store.update_run_info(run_id, RunStatus.FINISHED, t0 + 100_000)
