"""`superalign experiment` renders DIR/report.html from results.md, metrics.json and the plots; model
text in the results is escaped (never run)."""

import types

from superalign import experiments as ex
from superalign.experiments.common import markdown_table, mean_ci, plot_with_ci, write_metrics, write_results


def _fake_run(out, quick, seeds, learner, progress):
    write_metrics(out, {"pgr_median": 0.42, "quick": quick, "per_task": {"sst2": 0.4}})
    table = markdown_table(["condition", "example answer"], [["aligned", "<script>alert(1)</script>"]])
    write_results(out, "Fake experiment", ["## Results\n\n" + table])
    plot_with_ci(out / "curve.png", [0, 1], {"arm": [mean_ci([0.1, 0.2]), mean_ci([0.3, 0.4])]}, "x", "y", "t")
    return {"pgr_median": 0.42}


def test_run_experiment_writes_a_safe_html_report(monkeypatch, tmp_path):
    monkeypatch.setattr(ex, "load_experiment", lambda name: types.SimpleNamespace(run=_fake_run))
    metrics = ex.run_experiment("w2s", tmp_path, quick=True)
    assert metrics == {"pgr_median": 0.42}
    page = (tmp_path / "report.html").read_text()
    assert "<table>" in page and "<td>aligned</td>" in page  # the markdown table became HTML
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "pgr_median" in page and "0.42" in page  # headline scalars; nested dicts stay in results.md
    assert "data:image/png;base64," in page and "curve.png" in page
    assert not list(tmp_path.glob("*.tmp"))
