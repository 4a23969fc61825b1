"""The console's server-rendered pages (jinja2, autoescaped)."""

from __future__ import annotations

from typing import Any

from jinja2 import DictLoader, Environment, select_autoescape

BASE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{{ title }} - credits console</title>
<style>
body{font-family:system-ui,sans-serif;margin:0;color:#222}
nav{background:#1f2937;padding:.6em 1em}nav a{color:#fff;margin-right:1.2em;text-decoration:none}
nav .who{float:right;color:#cbd5e1}nav form{display:inline}
main{padding:1em 1.5em;max-width:1100px}
table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border:1px solid #ddd;padding:.3em .6em;font-size:.9em}
th{background:#f3f4f6;text-align:left}
.error{background:#fee2e2;padding:.6em;border:1px solid #f87171}
.ok{background:#dcfce7;padding:.6em;border:1px solid #4ade80}
.charts{display:grid;grid-template-columns:1fr 1fr;gap:1em}.charts div{height:260px}
img.slip{max-width:160px;max-height:220px;border:1px solid #ccc}
</style>
<script src="{{ base }}/assets/chart.umd.js" defer></script>
<script src="{{ base }}/assets/console.js" defer></script>
</head><body>
{% if operator %}<nav>
<a href="{{ base }}/profit">Profit</a><a href="{{ base }}/queue">Money queue</a>
<a href="{{ base }}/users">Users</a>
<span class="who">{{ operator.email or operator.uid }} ({{ operator.via }}) &middot; profile
{{ profile }}
<form method="post" action="{{ base }}/logout"><input type="hidden" name="csrf"
 value="{{ operator.csrf }}"><button id="logout">Sign out</button></form></span>
</nav>{% endif %}
<main>
{% if error %}<p class="error" id="error">{{ error }}</p>{% endif %}
{% if notice %}<p class="ok" id="notice">{{ notice }}</p>{% endif %}
{% block body %}{% endblock %}
</main></body></html>
"""

LOGIN = """{% extends "base" %}{% block body %}
<h1>Sign in</h1>
<form method="post" action="{{ base }}/login">
<p><label>Firebase Auth ID token (an account with the <code>super_admin</code> claim)<br>
<textarea name="id_token" rows="4" cols="80"></textarea></label></p>
<p><button id="token-sign-in">Sign in with the ID token</button></p>
</form>
{% if dev %}
<h2>Dev sign-in (emulators only)</h2>
<form method="post" action="{{ base }}/login/dev">
<p><label>E-mail <input name="email" id="dev-email" value="operator@localhost"></label>
<button id="dev-sign-in">Dev sign-in</button></p>
</form>
{% endif %}
{% endblock %}"""

PROFIT = """{% extends "base" %}{% block body %}
<h1>Profit</h1>
<form method="get"><label>From <input type="date" name="start" value="{{ start }}"></label>
<label>to <input type="date" name="end" value="{{ end }}"></label>
<input type="hidden" name="profile" value="{{ profile }}"><button>Show</button></form>
<div class="charts">
<div><canvas id="daily-chart"></canvas></div><div><canvas id="daily-margin"></canvas></div>
<div><canvas id="monthly-chart"></canvas></div><div><canvas id="monthly-margin"></canvas></div>
</div>
<script type="application/json" id="profit-data">{{ chart_json|safe }}</script>
<h2>Cost by engine ({{ start }} to {{ end }})</h2>
<table id="engines"><tr><th>engine</th><th>cost (USD)</th><th>uses</th></tr>
{% for name, e in engines %}<tr><td>{{ name }}</td><td>{{ '%.4f'|format(e.cost) }}</td>
<td>{{ e.n }}</td></tr>{% else %}<tr><td colspan="3">no usage in the range</td></tr>{% endfor %}
</table>
<h2>Days</h2>
<table id="days"><tr><th>day</th><th>revenue</th><th>cost</th><th>profit</th><th>margin %</th></tr>
{% for d in days %}<tr><td>{{ d.label }}</td><td>{{ d.revenue }}</td><td>{{ d.cost }}</td>
<td>{{ d.profit }}</td><td>{{ d.margin }}</td></tr>{% else %}
<tr><td colspan="5">no daily aggregates in the range</td></tr>{% endfor %}</table>
{% endblock %}"""

QUEUE = """{% extends "base" %}{% block body %}
<h1>Money queue</h1>
<h2>Parked Stripe events</h2>
<table id="parked"><tr><th>event</th><th>type</th><th>reason</th><th>parked</th><th></th></tr>
{% for e in parked %}<tr><td>{{ e.event_id }}</td><td>{{ e.type }}</td><td>{{ e.reason }}</td>
<td>{{ e.parked_at }}</td><td><form method="post" action="{{ base }}/queue/replay">
<input type="hidden" name="csrf" value="{{ operator.csrf }}">
<input type="hidden" name="profile" value="{{ profile }}">
<input type="hidden" name="event_id" value="{{ e.event_id }}">
<button id="replay-{{ e.event_id }}">Replay</button></form></td></tr>
{% else %}<tr><td colspan="5">no parked events</td></tr>{% endfor %}</table>
{% for status, rows in slips %}
<h2>{{ status|capitalize }} slips</h2>
<table id="slips-{{ status|lower }}"><tr><th>slip</th><th>image</th><th>user</th><th>amount</th>
<th>bank ref</th><th>reason</th><th>approve</th><th>reject</th></tr>
{% for s in rows %}<tr><td>{{ s.slip_id }}</td>
<td><img class="slip" alt="slip {{ s.slip_id }}" src="{{ base }}/slips/{{ s.slip_id }}/image"></td>
<td>{{ s.user_id }}</td><td>{{ s.amount_detected or '' }}</td><td>{{ s.bank_ref or '' }}</td>
<td>{{ s.reject_reason or '' }}</td>
<td><form method="post" action="{{ base }}/queue/slips/approve">
<input type="hidden" name="csrf" value="{{ operator.csrf }}">
<input type="hidden" name="slip_id" value="{{ s.slip_id }}">
<input name="reason" placeholder="reason" required id="approve-reason-{{ s.slip_id }}">
<input name="bank_ref" placeholder="bank ref (optional)" size="12">
<input name="amount" placeholder="baht (optional)" size="8">
<button id="approve-{{ s.slip_id }}">Approve</button></form></td>
<td>{% if status == 'PENDING' %}<form method="post" action="{{ base }}/queue/slips/reject">
<input type="hidden" name="csrf" value="{{ operator.csrf }}">
<input type="hidden" name="slip_id" value="{{ s.slip_id }}">
<input name="reason" placeholder="reason" required>
<button id="reject-{{ s.slip_id }}">Reject</button></form>{% endif %}</td></tr>
{% else %}<tr><td colspan="8">none</td></tr>{% endfor %}</table>
{% endfor %}
{% endblock %}"""

USERS = """{% extends "base" %}{% block body %}
<h1>Users</h1>
<form method="get"><label>User id or e-mail <input name="q" id="user-q" value="{{ q }}"></label>
<select name="profile">{% for p in profiles %}<option{% if p == profile %} selected{% endif %}>
{{ p }}</option>{% endfor %}</select><button id="find">Find</button></form>
{% if user %}
<h2>{{ user.user_id }}</h2>
<p>e-mail: {{ user.email }} &middot; balance: <b id="balance">{{ user.balance }}</b>
&middot; used: {{ user.used }}</p>
<h3>Adjust</h3>
<form method="post" action="{{ base }}/users/adjust">
<input type="hidden" name="csrf" value="{{ operator.csrf }}">
<input type="hidden" name="profile" value="{{ profile }}">
<input type="hidden" name="user_id" value="{{ user.user_id }}">
<input type="hidden" name="key" value="{{ adjust_key }}">
<label>Amount (negative removes) <input name="amount" id="adjust-amount" size="8"></label>
<label>Reason <input name="reason" id="adjust-reason" required></label>
<button id="adjust">Adjust</button></form>
<h3>Transactions</h3>
<table id="transactions"><tr><th>when</th><th>type</th><th>amount</th><th>balance after</th>
<th>description</th></tr>
{% for t in transactions %}<tr><td>{{ t.created_at }}</td><td>{{ t.type }}</td>
<td>{{ t.amount }}</td><td>{{ t.balance_after }}</td><td>{{ t.description }}</td></tr>
{% else %}<tr><td colspan="5">none</td></tr>{% endfor %}</table>
{% elif q %}<p>No user {{ q }} in the {{ profile }} profile.</p>{% endif %}
{% endblock %}"""

_ENV = Environment(
    loader=DictLoader(
        {"base": BASE, "login": LOGIN, "profit": PROFIT, "queue": QUEUE, "users": USERS}
    ),
    autoescape=select_autoescape(default=True, default_for_string=True),
)


def render(name: str, **context: Any) -> str:
    return _ENV.get_template(name).render(**context)
