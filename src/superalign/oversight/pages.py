"""The review desk's HTML: jinja2 templates with autoescape on (model and attacker text is adversarial).

No JavaScript anywhere: plain forms, server-rendered, so the desk's Content-Security-Policy can forbid
every script. Nothing here is marked `|safe`.
"""

from __future__ import annotations

from typing import Any

_BASE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }} · superalign review</title>
<style>
body { font-family: system-ui, sans-serif; margin: 0; color: #1d2330; background: #f6f7fa; }
nav { background: #1d2330; padding: .6rem 1.5rem; display: flex; gap: 1.2rem; align-items: center; }
nav a { color: #e8ecf5; text-decoration: none; font-weight: 600; } nav .sp { flex: 1; }
nav form { margin: 0; } nav button { background: none; border: 1px solid #889; color: #e8ecf5; }
main { max-width: 1100px; margin: 1.2rem auto; padding: 0 1rem; }
.card { background: #fff; border: 1px solid #dde1ea; border-radius: 6px; padding: .8rem 1rem; margin-bottom: 1rem; }
.card.done { opacity: .75; border-left: 4px solid #3a8f5c; }
.meta { color: #555; font-size: .85rem; } .lbl { font-weight: 600; font-size: .8rem; margin: .4rem 0 .1rem; }
pre { white-space: pre-wrap; word-break: break-word; background: #f1f3f8; padding: .5rem; margin: 0;
      border-radius: 4px; font-size: .88rem; max-height: 14rem; overflow: auto; }
.verdict { font-size: .88rem; padding: .3rem .5rem; border-radius: 4px; background: #eef2fb; }
.unsafe { color: #a1261c; font-weight: 700; } .safe { color: #2c6e44; font-weight: 700; } .abst { color: #8a6d00; font-weight: 700; }
form.inline { display: flex; flex-wrap: wrap; gap: .5rem; align-items: center; margin-top: .5rem; }
input[type=text], input[type=password] { padding: .3rem .4rem; border: 1px solid #bbc; border-radius: 4px; }
button { padding: .3rem .7rem; border-radius: 4px; border: 1px solid #99a; background: #fff; cursor: pointer; }
button.unsafe { background: #fbe9e7; } button.safe { background: #e7f5ec; }
table { border-collapse: collapse; background: #fff; } th, td { border: 1px solid #d5d9e2; padding: .3rem .6rem; text-align: right; }
th { background: #f1f3f8; } .err { color: #a1261c; font-weight: 600; }
.ok { background: #e7f5ec; border: 1px solid #9fd0b0; border-radius: 4px; padding: .4rem .7rem; color: #1f5a36; }
.wide { padding: 0 1rem 1rem; } .wide iframe { display: block; width: 100%; height: calc(100vh - 3.5rem); min-height: 40rem;
        border: 1px solid #dde1ea; background: #fff; box-sizing: border-box; }
</style></head><body>
{% if authed %}<nav><a href="/queue">Queue</a><a href="/overview">Run overview</a><a href="/promotion">Promotion gate</a><a href="/values">Values</a><a href="/clarifications">Clarifications</a>
<span class="sp"></span><span class="meta" style="color:#aab">{{ run_name }}</span>
<form method="post" action="/logout"><input type="hidden" name="csrf" value="{{ csrf }}"><button>Log out</button></form></nav>{% endif %}
<main>{% block body %}{% endblock %}</main>{% block wide %}{% endblock %}</body></html>"""

_LOGIN = """{% extends "base" %}{% block body %}
<div class="card" style="max-width: 26rem; margin: 4rem auto;"><h2>superalign review desk</h2>
{% if error %}<p class="err">{{ error }}</p>{% endif %}
<form method="post" action="/login"><p class="lbl">Access token (printed when the desk started, or $SUPERALIGN_TOKEN)</p>
<input type="password" name="token" id="token" autocomplete="current-password" style="width: 100%">
<p><button type="submit" id="login">Log in</button></p></form></div>{% endblock %}"""

_VERDICT = """{% macro show(v) %}{% if v %}<div class="verdict">critic <b>{{ v.critic }}</b>:
{% if v.unsafe is none %}<span class="abst">abstains</span>{% elif v.unsafe %}<span class="unsafe">unsafe</span>{% else %}<span class="safe">safe</span>{% endif %}
· refusal {{ "yes" if v.refusal else "no" }} · P(unsafe) {{ "%.2f"|format(v.score) }} · confidence {{ "%.2f"|format(v.confidence) }}
<div>{{ v.explanation }}</div></div>{% else %}<div class="verdict meta">no critic verdict</div>{% endif %}{% endmacro %}"""

_QUEUE = """{% extends "base" %}{% import "verdict" as vd %}{% block body %}
<h2>Review queue</h2>
{% if confirm %}<p class="ok" id="saved" role="status">Saved: {% if confirm.action == "comment" %}comment on{% else %}{% if confirm.unsafe is none %}unsure{% elif confirm.unsafe %}unsafe{% else %}safe{% endif %}{% if confirm.action == "override" %} (overrides the critic){% endif %} for{% endif %}
<a href="/items/{{ confirm.item_id }}">{{ confirm.item_id }}</a> by {{ confirm.reviewer }} at {{ confirm.created_at }}{% if confirm.note %} — {{ confirm.note }}{% endif %}.</p>{% endif %}
<p class="meta">{{ counts.pending }} pending · {{ counts.labelled }} labelled · {{ counts.total }} items.
Items the critic is least sure of come first. {% if show_all %}<a href="/queue">pending only</a>{% else %}<a href="/queue?show=all">show all</a>{% endif %}</p>
{% for it in items %}{% set ev = labels.get(it.id) %}
<div class="card{{ ' done' if ev else '' }}" id="item-{{ loop.index }}" data-item="{{ it.id }}">
<div class="meta">round {{ it.round }} · {{ it.reason or it.source }} · prompt labelled harmful: {{ "unknown" if it.harmful is none else it.harmful }} · <a href="/items/{{ it.id }}">details</a></div>
<p class="lbl">Query</p><pre class="prompt">{{ it.prompt }}</pre>
<p class="lbl">Response</p><pre class="response">{{ it.response }}</pre>
<p class="lbl">Critic verdict</p>{{ vd.show(it.verdict) }}
{% if ev %}<p class="meta">latest human {{ ev.action }} by {{ ev.reviewer }}: {% if ev.unsafe is none %}unsure{% elif ev.unsafe %}unsafe{% else %}safe{% endif %}{% if ev.note %} — {{ ev.note }}{% endif %}</p>{% endif %}
<form class="inline" method="post" action="/items/{{ it.id }}/label">
<input type="hidden" name="csrf" value="{{ csrf }}">
<input type="text" name="reviewer" maxlength="64" value="{{ reviewer }}" size="10" aria-label="reviewer">
<label><input type="checkbox" name="refusal" value="1"{{ ' checked' if it.verdict and it.verdict.refusal else '' }}> response refuses</label>
<input type="text" name="note" maxlength="2000" placeholder="note (optional)" size="28" aria-label="note">
<button class="unsafe" name="verdict" value="unsafe">Unsafe</button>
<button class="safe" name="verdict" value="safe">Safe</button>
<button name="verdict" value="unsure">Unsure</button></form>
<form class="inline" method="post" action="/items/{{ it.id }}/comment">
<input type="hidden" name="csrf" value="{{ csrf }}"><input type="hidden" name="reviewer" value="{{ reviewer }}">
<input type="text" name="note" maxlength="2000" placeholder="comment without labelling" size="40" aria-label="comment"><button>Comment</button></form>
</div>{% else %}<p>Nothing to review.</p>{% endfor %}{% endblock %}"""

_ITEM = """{% extends "base" %}{% import "verdict" as vd %}{% block body %}
<h2>Item {{ it.id }}</h2><div class="card"><p class="lbl">Query</p><pre>{{ it.prompt }}</pre>
<p class="lbl">Response</p><pre>{{ it.response }}</pre><p class="lbl">Critic verdict</p>{{ vd.show(it.verdict) }}</div>
<h3>History</h3><table><tr><th>#</th><th>when</th><th>who</th><th>action</th><th>unsafe</th><th>refusal</th><th>note</th><th>provenance</th></tr>
{% for e in events %}<tr><td>{{ e.seq }}</td><td>{{ e.created_at }}</td><td>{{ e.reviewer }}</td><td>{{ e.action }}</td>
<td>{{ e.unsafe }}</td><td>{{ e.refusal }}</td><td style="text-align:left">{{ e.note }}</td><td>{{ e.provenance }}</td></tr>{% endfor %}</table>
{% endblock %}"""

_OVERVIEW = """{% extends "base" %}{% block body %}
<h2>Run overview</h2>
{% if rows %}<table><tr>{% for c in cols %}<th>{{ c }}</th>{% endfor %}</tr>
{% for r in rows %}<tr>{% for v in r %}<td>{{ v }}</td>{% endfor %}</tr>{% endfor %}</table>
{% else %}<p class="meta">No round has finished yet (no rounds.jsonl).</p>{% endif %}
<p class="meta">Queue: {{ counts.pending }} pending, {{ counts.labelled }} labelled. Current learner version: <b>{{ current }}</b>.</p>
{% if has_report %}<h3>Report (plots)</h3><p class="meta">Below at the page's full width, one screen tall (scroll inside it),
or <a href="/report" target="_blank" rel="noopener" id="report-page">open the report on its own page</a>.</p>{% endif %}
{% endblock %}{% block wide %}{% if has_report %}<div class="wide"><iframe src="/report" sandbox title="run report"></iframe></div>{% endif %}{% endblock %}"""

_PROMOTION = """{% extends "base" %}{% block body %}
<h2>Promotion gate</h2><p>Current learner version: <b id="current">{{ current }}</b>. A version becomes current only when a human approves it.</p>
<table><tr><th>version</th><th>status</th><th>decide</th></tr>
{% for v, st in versions %}<tr><td>{{ v }}</td><td>{{ st }}</td><td style="text-align:left">
{% if st != "proposed" %}<span class="meta">{{ "not proposed yet" if st == "unknown" else "decided" }}</span>{% else %}<form class="inline" method="post" action="/promotion/{{ v }}"><input type="hidden" name="csrf" value="{{ csrf }}">
<input type="text" name="reviewer" maxlength="64" value="{{ reviewer }}" size="10" aria-label="reviewer"><input type="text" name="note" maxlength="2000" placeholder="note" size="20" aria-label="note">
<button class="safe" name="decision" value="approve">Approve &amp; promote</button><button class="unsafe" name="decision" value="reject">Reject</button></form>{% endif %}</td></tr>
{% else %}<tr><td colspan="3">No checkpoints yet.</td></tr>{% endfor %}</table>
<h3>Log</h3><table><tr><th>#</th><th>when</th><th>version</th><th>action</th><th>by</th><th>auto</th><th>note</th></tr>
{% for e in events %}<tr><td>{{ e.seq }}</td><td>{{ e.created_at }}</td><td>{{ e.version }}</td><td>{{ e.action }}</td><td>{{ e.actor }}</td><td>{{ e.auto }}</td><td style="text-align:left">{{ e.note }}</td></tr>{% endfor %}</table>
{% endblock %}"""

# Evolving values (oversight/values.py, rejudge.py, clarify.py): versions, re-judge reports, clarifications.
_REJUDGE = """{% extends "base" %}{% block body %}{% include "rejudge_section" %}{% endblock %}"""

_REJUDGE_SECTION = """<div class="card rejudge"><h3>Re-judged under values {{ rep.version }} ({{ rep.critic }}, profile {{ rep.profile }})</h3>
<p class="meta">Baseline: {{ rep.baseline }} · unsafe threshold {{ "%.2f"|format(rep.threshold_before) }} → {{ "%.2f"|format(rep.threshold_after) }}
· <b>{{ rep.unsafe_flips }}</b> unsafe flips, <b>{{ rep.refusal_flips }}</b> refusal flips of {{ rep.n_verdicts }} verdicts.</p>
<p class="lbl">Value changes since {{ rep.baseline_version }}</p><pre>{% for c in rep.changes %}{{ c }}
{% else %}(none){% endfor %}</pre>
{% if rep.heldout %}<p class="lbl">Held-out metrics had the run judged with these values</p>
<table><tr><th>round</th><th>ASR before</th><th>ASR after</th><th>over-refusal before</th><th>over-refusal after</th></tr>
{% for k, m in rep.heldout.items() %}<tr><td>{{ k }}</td><td>{{ "%.3f"|format(m.asr_before) }}</td><td>{{ "%.3f"|format(m.asr_after) }}</td>
<td>{{ "%.3f"|format(m.over_refusal_before) }}</td><td>{{ "%.3f"|format(m.over_refusal_after) }}</td></tr>{% endfor %}</table>{% endif %}
{% for title, table in [("round", rep.by_round), ("category", rep.by_category)] %}{% if table %}
{% set cols = table.values()|map("list")|sum(start=[])|unique|sort %}
<p class="lbl">Flips by {{ title }}</p><table><tr><th>{{ title }}</th>{% for c in cols %}<th>{{ c }}</th>{% endfor %}</tr>
{% for k, row in table.items() %}<tr><td>{{ k }}</td>{% for c in cols %}<td>{{ row.get(c, 0) }}</td>{% endfor %}</tr>{% endfor %}</table>{% endif %}{% endfor %}
{% for e in rep.examples %}<div class="card"><div class="meta"><b>{{ e.kind }}</b> · round {{ e.round }} · {{ e.origin }} · {{ e.category }}
· P(unsafe) {{ "%.2f"|format(e.before.score) }} → {{ "%.2f"|format(e.after.score) }}</div>
<p class="lbl">Query</p><pre>{{ e.prompt }}</pre><p class="lbl">Response</p><pre>{{ e.response }}</pre>
<p class="lbl">Now</p><div class="verdict">{{ e.after.explanation }}</div></div>{% endfor %}</div>"""

_VALUES = """{% extends "base" %}{% block body %}
<h2>Values</h2>{% if versions %}<p>Current constitution version: <b id="current-values">{{ versions[-1].version }}</b>.
Edit with <code>superalign values edit</code>; clarifications accepted <a href="/clarifications">here</a> add a version.</p>
<table style="width:100%"><tr><th>version</th><th>parent</th><th>by</th><th>source</th><th>when</th><th>reason and changes</th></tr>
{% for v in versions|reverse %}<tr><td>{{ v.version }}</td><td>{{ v.parent or "" }}</td><td>{{ v.author }}</td><td>{{ v.source }}</td>
<td>{{ v.created_at }}</td><td style="text-align:left; width:55%">{{ v.reason }}{% if v.changes %}<pre>{% for c in v.changes %}{{ c }}
{% endfor %}</pre>{% endif %}</td></tr>{% endfor %}</table>
{% else %}<p id="no-values">No value history yet: the run judges with its config's constitution. The first
<code>superalign values</code> command (or a clarification accepted <a href="/clarifications">here</a>) records it as the first version.</p>{% endif %}
<h3>Re-judged history</h3>{% for rep in reports %}{% include "rejudge_section" %}{% else %}
<p class="meta">Nothing re-judged yet: <code>superalign values rejudge --run DIR</code>.</p>{% endfor %}
{% endblock %}"""

_CLARIFICATIONS = """{% extends "base" %}{% block body %}
<h2>Value clarifications</h2>
<p class="meta">The model proposed these rubric sentences from cases its critic found hard (abstentions, low confidence,
disagreement, human overrides). Accepting one adds it to a new constitution version; a rejection is kept with its reason.
The text is the model's: read it as untrusted.</p>
{% for p in items %}<div class="card{{ ' done' if p.status != 'pending' else '' }}" id="clar-{{ loop.index }}" data-clarification="{{ p.id }}">
<div class="meta">{{ p.id }} · {{ p.status }}{% if p.version %} → version {{ p.version }}{% endif %} · dimension {{ p.dimension }} · item {{ p.rubric_id }} · by {{ p.source }}
{% if p.decided_by %} · decided by {{ p.decided_by }}{% if p.reason %}: {{ p.reason }}{% endif %}{% endif %}</div>
<p class="lbl">Proposed rubric sentence</p><pre class="proposal">{{ p.text }}</pre>
<p class="lbl">Examples</p>{% for e in p.examples %}<pre class="example">{{ e }}</pre>{% endfor %}
{% if p.status == "pending" %}<form class="inline" method="post" action="/clarifications/{{ p.id }}">
<input type="hidden" name="csrf" value="{{ csrf }}">
<input type="text" name="reviewer" maxlength="64" value="{{ reviewer }}" size="10" aria-label="reviewer">
<input type="text" name="reason" maxlength="2000" placeholder="reason (needed to reject)" size="32" aria-label="reason">
<button class="safe" name="decision" value="accept">Accept into next version</button>
<button class="unsafe" name="decision" value="reject">Reject</button></form>{% endif %}
</div>{% else %}<p>No proposals: <code>superalign values propose --run DIR</code>.</p>{% endfor %}{% endblock %}"""

TEMPLATES = {
    "base": _BASE,
    "login": _LOGIN,
    "verdict": _VERDICT,
    "queue": _QUEUE,
    "item": _ITEM,
    "overview": _OVERVIEW,
    "promotion": _PROMOTION,
    "rejudge": _REJUDGE,
    "rejudge_section": _REJUDGE_SECTION,
    "values": _VALUES,
    "clarifications": _CLARIFICATIONS,
}


def make_env() -> Any:
    """A jinja2 Environment over TEMPLATES with autoescape for every template."""
    from jinja2 import DictLoader, Environment, StrictUndefined

    return Environment(loader=DictLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined)
