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
form.inline{display:inline}fieldset{border:1px solid #ddd;margin:.5em 0 1em}
fieldset label{display:inline-block;margin:.2em .8em .2em 0}
.status-suspended,.status-banned,.state-open,.health-unavailable{color:#b91c1c;font-weight:bold}
.state-half_open,.health-degraded,.quota-warning,.quota-critical{color:#b45309;font-weight:bold}
.quota-exhausted{color:#b91c1c;font-weight:bold}
img.slip{max-width:160px;max-height:220px;border:1px solid #ccc}
</style>
<script src="{{ base }}/assets/chart.umd.js" defer></script>
<script src="{{ base }}/assets/console.js" defer></script>
</head><body>
{% if operator %}<nav>
<a href="{{ base }}/profit">Profit</a><a href="{{ base }}/loss">Loss users</a>
<a href="{{ base }}/providers">Providers</a><a href="{{ base }}/queue">Money queue</a>
<a href="{{ base }}/users">Users</a><a href="{{ base }}/promotions">Promotions and settings</a>
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
<h2>Cost by engine and plan mix ({{ start }} to {{ end }})</h2>
<div class="charts">
<div><canvas id="engine-chart"></canvas></div><div><canvas id="plan-chart"></canvas></div>
</div>
<table id="engines"><tr><th>engine</th><th>cost (USD)</th><th>uses</th></tr>
{% for name, e in engines %}<tr><td>{{ name }}</td><td>{{ '%.4f'|format(e.cost) }}</td>
<td>{{ e.n }}</td></tr>{% else %}<tr><td colspan="3">no usage in the range</td></tr>{% endfor %}
</table>
<table id="plans"><tr><th>plan</th><th>revenue (USD)</th><th>cost (USD)</th><th>profit (USD)</th>
<th>margin %</th><th>generations</th><th>user-days</th></tr>
{% for p in plans %}<tr><td>{{ p.plan }}</td><td>{{ '%.4f'|format(p.revenue) }}</td>
<td>{{ '%.4f'|format(p.cost) }}</td><td>{{ '%.4f'|format(p.profit) }}</td>
<td>{{ p.margin if p.margin is not none else '' }}</td><td>{{ p.generations }}</td>
<td>{{ p.user_days }}</td></tr>
{% else %}<tr><td colspan="7">no plan figures in the range</td></tr>{% endfor %}</table>
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
<input name="reason" placeholder="reason" required id="replay-reason-{{ e.event_id }}">
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
<h2>Clawback shortfalls</h2>
<p>Refunds and disputes that could not take back every credit (already spent).</p>
<table id="shortfalls"><tr><th>event</th><th>when</th><th>user</th><th>payment</th><th>reason</th>
<th>requested</th><th>clawed</th><th>shortfall</th></tr>
{% for s in shortfalls %}<tr><td>{{ s.event_id }}</td><td>{{ s.when }}</td>
<td><a href="{{ base }}/users?q={{ s.user_id|urlencode }}&amp;profile={{ profile }}">
{{ s.user_id }}</a></td>
<td>{{ s.payment_intent_id }}</td><td>{{ s.reason }}</td><td>{{ s.requested_credits }}</td>
<td>{{ s.clawed_credits }}</td><td><b>{{ s.shortfall_credits }}</b></td></tr>
{% else %}<tr><td colspan="8">no shortfalls</td></tr>{% endfor %}</table>
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
<h3>Reconcile</h3>
<form method="post" action="{{ base }}/users/reconcile">
<input type="hidden" name="csrf" value="{{ operator.csrf }}">
<input type="hidden" name="profile" value="{{ profile }}">
<input type="hidden" name="user_id" value="{{ user.user_id }}">
<button id="reconcile">Reconcile now</button> (balance against the sum of transactions and
their chain; writes a report, changes nothing)</form>
{% if accounts %}
<h3>Account (BigEye)</h3>
<p>status: <b id="account-status" class="status-{{ user.status }}">{{ user.status }}</b>
&middot; device: <code id="hardware-id">{{ user.hardware_id }}</code></p>
<form method="post" action="{{ base }}/users/status">
<input type="hidden" name="csrf" value="{{ operator.csrf }}">
<input type="hidden" name="profile" value="{{ profile }}">
<input type="hidden" name="user_id" value="{{ user.user_id }}">
<label>Reason <input name="reason" id="status-reason" required></label>
<button name="change" value="suspend" id="suspend">Suspend</button>
<button name="change" value="ban" id="ban">Ban</button>
<button name="change" value="unban" id="unban">Unban</button></form>
<form method="post" action="{{ base }}/users/rebind">
<input type="hidden" name="csrf" value="{{ operator.csrf }}">
<input type="hidden" name="profile" value="{{ profile }}">
<input type="hidden" name="user_id" value="{{ user.user_id }}">
<label>New device (hardware id) <input name="hardware_id" id="rebind-hardware" required></label>
<label>Reason <input name="reason" id="rebind-reason" required></label>
<button id="rebind">Rebind device</button> (the old device's tokens stop working)</form>
{% endif %}
<h3>Holds (open reservations)</h3>
<table id="holds"><tr><th>hold</th><th>amount</th><th>created</th><th>expires</th><th>job</th></tr>
{% for h in holds %}<tr><td>{{ h.hold_id }}</td><td>{{ h.amount }}</td><td>{{ h.created_at }}</td>
<td>{{ h.expires_at }}</td><td>{{ h.job_id }}</td></tr>
{% else %}<tr><td colspan="5">none</td></tr>{% endfor %}</table>
<h3>Transactions</h3>
<table id="transactions"><tr><th>when</th><th>type</th><th>amount</th><th>balance after</th>
<th>description</th></tr>
{% for t in transactions %}<tr><td>{{ t.created_at }}</td><td>{{ t.type }}</td>
<td>{{ t.amount }}</td><td>{{ t.balance_after }}</td><td>{{ t.description }}</td></tr>
{% else %}<tr><td colspan="5">none</td></tr>{% endfor %}</table>
{% elif q %}<p>No user {{ q }} in the {{ profile }} profile.</p>{% endif %}
{% endblock %}"""

LOSS = """{% extends "base" %}{% block body %}
<h1>Loss users</h1>
<p>Users whose profit over the last 30 days is below zero (the hourly loss scan), most
negative first. <code>rate_limited</code> lowers the user's daily token limit to
{{ limited_tokens }} until cleared; <code>monitored</code> and <code>plan_upgraded</code> are
recorded.</p>
<table id="loss-users"><tr><th>user</th><th>plan</th><th>profit (USD)</th><th>margin %</th>
<th>cost (USD)</th><th>revenue (USD)</th><th>days in loss</th><th>detected</th>
<th>action taken</th><th>notes</th><th>set action</th></tr>
{% for r in rows %}<tr id="loss-{{ r.user_id }}">
<td>{{ r.user_id }}<br><small>{{ r.email or '' }}</small></td>
<td>{{ r.subscription_plan or '' }}</td><td>{{ r.total_profit_usd }}</td>
<td>{{ r.profit_margin_percent }}</td><td>{{ r.total_cost_usd }}</td>
<td>{{ r.total_revenue_usd }}</td><td>{{ r.days_in_loss }}</td><td>{{ r.detected_at }}</td>
<td class="action-taken">{{ r.action_taken or '-' }}</td><td>{{ r.notes or '' }}</td>
<td><form method="post" action="{{ base }}/loss/action">
<input type="hidden" name="csrf" value="{{ operator.csrf }}">
<input type="hidden" name="user_id" value="{{ r.user_id }}">
<select name="action" id="loss-action-{{ r.user_id }}">{% for c in choices %}
<option{% if c == r.action_taken %} selected{% endif %}>{{ c }}</option>{% endfor %}</select>
<input name="reason" placeholder="reason" required id="loss-reason-{{ r.user_id }}">
<button id="loss-set-{{ r.user_id }}">Set</button></form></td></tr>
{% else %}<tr><td colspan="11">no users in loss</td></tr>{% endfor %}</table>
{% endblock %}"""

PROVIDERS = """{% extends "base" %}{% block body %}
<h1>Providers</h1>
<h2>Open router alerts</h2>
<table id="alerts"><tr><th>when</th><th>severity</th><th>type</th><th>provider</th><th>model</th>
<th>message</th><th>acknowledge</th></tr>
{% for a in alerts %}<tr><td>{{ a.created_at }}</td><td>{{ a.severity }}</td><td>{{ a.type }}</td>
<td>{{ a.provider }}</td><td>{{ a.model_id or '' }}</td><td>{{ a.message }}</td>
<td><form method="post" action="{{ base }}/providers/ack">
<input type="hidden" name="csrf" value="{{ operator.csrf }}">
<input type="hidden" name="alert_id" value="{{ a.alert_id }}">
<input name="reason" placeholder="reason" required id="ack-reason-{{ a.alert_id }}">
<button id="ack-{{ a.alert_id }}">Acknowledge</button></form></td></tr>
{% else %}<tr><td colspan="7">no open alerts</td></tr>{% endfor %}</table>
<h2>Health</h2>
<table id="health"><tr><th>provider</th><th>status</th><th>success rate</th><th>latency (ms)</th>
<th>errors 24 h</th><th>breaker open</th><th>last error</th></tr>
{% for h in health %}<tr><td>{{ h.provider or h.id }}</td>
<td class="health-{{ h.status }}">{{ h.status }}</td><td>{{ h.success_rate }}</td>
<td>{{ h.avg_latency_ms }}</td><td>{{ h.error_count_24h }}</td><td>{{ h.circuit_breaker_open }}</td>
<td>{{ h.last_error or '' }}</td></tr>
{% else %}<tr><td colspan="7">no provider has reported yet</td></tr>{% endfor %}</table>
<h2>Circuit breakers</h2>
<table id="breakers"><tr><th>provider</th><th>state</th><th>opened</th><th>next attempt</th>
<th>consecutive failures</th><th>half-open attempts</th><th>times opened</th></tr>
{% for b in breakers %}<tr><td>{{ b.provider or b.id }}</td>
<td class="state-{{ b.state }}">{{ b.state }}</td><td>{{ b.opened_at }}</td><td>{{ b.next }}</td>
<td>{{ b.consecutive_failures if b.consecutive_failures is defined else '' }}</td>
<td>{{ b.half_open_attempts }}</td>
<td>{{ b.opened_count if b.opened_count is defined else '' }}</td></tr>
{% else %}<tr><td colspan="7">no breakers</td></tr>{% endfor %}</table>
<h2>Quotas</h2>
<table id="quotas"><tr><th>provider</th><th>model</th><th>type</th><th>used</th><th>limit</th>
<th>remaining</th><th>status</th><th>resets</th><th>period</th></tr>
{% for q in quotas %}<tr><td>{{ q.provider }}</td><td>{{ q.model_id }}</td>
<td>{{ q.quota_type }}</td>
<td>{{ q.used }}</td><td>{{ q.limit }}</td><td>{{ q.remaining }}</td>
<td class="quota-{{ q.status }}">{{ q.status }}</td><td>{{ q.reset_at }}</td>
<td>{{ q.reset_period }}</td></tr>
{% else %}<tr><td colspan="9">no quotas</td></tr>{% endfor %}</table>
<h2>Pipeline flags</h2>
<table id="flags"><tr><th>flag</th><th>value</th><th>set</th></tr>
{% for name, value in flags|dictsort %}<tr><td>{{ name }}</td><td>{{ value|lower }}</td>
<td><form method="post" action="{{ base }}/providers/flag">
<input type="hidden" name="csrf" value="{{ operator.csrf }}">
<input type="hidden" name="flag" value="{{ name }}">
<input type="hidden" name="value" value="{{ 'false' if value else 'true' }}">
<input name="reason" placeholder="reason" required>
<button id="flag-{{ name }}">Set {{ 'false' if value else 'true' }}</button></form></td></tr>
{% endfor %}</table>
{% endblock %}"""

PROMOTIONS = """{% extends "base" %}
{% macro field(label, name, attrs, default='') -%}
<label>{{ label }} <input name="{{ name }}" {{ attrs|safe }}
 value="{{ form.get(name, default) }}"></label>
{%- endmacro %}
{% block body %}
<h1>Promotions and settings</h1>
<h2>Promotions</h2>
<table id="promotions"><tr><th>id</th><th>name</th><th>status</th><th>type</th><th>reward</th>
<th>priority</th><th>start</th><th>end</th><th>code</th><th>redemptions</th><th>change</th></tr>
{% for p in rows %}<tr id="promo-{{ p.promo_id }}"><td>{{ p.promo_id }}</td><td>{{ p.name }}</td>
<td class="promo-status">{{ p.status }}</td><td>{{ p.type }}</td><td>{{ p.reward_type or '' }}</td>
<td>{{ p.priority }}</td><td>{{ p.start }}</td><td>{{ p.end }}</td><td>{{ p.code or '' }}</td>
<td>{{ p.redemptions }}</td><td>{% if p.status in ('DRAFT', 'ACTIVE', 'PAUSED') %}
<form method="post" action="{{ base }}/promotions/change">
<input type="hidden" name="csrf" value="{{ operator.csrf }}">
<input type="hidden" name="promo_id" value="{{ p.promo_id }}">
<input name="reason" placeholder="reason" required id="promo-reason-{{ p.promo_id }}">
{% if p.status != 'PAUSED' %}
<button name="change" value="pause" id="pause-{{ p.promo_id }}">Pause</button>{% endif %}
{% if p.status == 'PAUSED' %}
<button name="change" value="resume" id="resume-{{ p.promo_id }}">Resume</button>{% endif %}
<button name="change" value="cancel" id="cancel-{{ p.promo_id }}">Cancel</button></form>
{% endif %}</td></tr>
{% else %}<tr><td colspan="11">no promotions</td></tr>{% endfor %}</table>
<h3>New promotion</h3>
<form method="post" action="{{ base }}/promotions/create" id="promotion-form">
<input type="hidden" name="csrf" value="{{ operator.csrf }}">
<fieldset><legend>What</legend>
{{ field("Id", "promo_id", 'id="promo-id" required') }}
{{ field("Name", "name", 'id="promo-name" required') }}
<label>Type <select name="type" id="promo-type">{% for t in types %}
<option{% if t == form.get('type') %} selected{% endif %}>{{ t }}</option>{% endfor %}
</select></label>
<label>Status <select name="status" id="promo-status"><option>DRAFT</option>
<option{% if form.get('status') == 'ACTIVE' %} selected{% endif %}>ACTIVE</option></select></label>
{{ field("Priority", "priority", 'size="4"', "0") }}
{{ field("Code", "code", 'size="10"') }}</fieldset>
<fieldset><legend>When and who (times in UTC)</legend>
{{ field("Start", "start", 'type="datetime-local" id="promo-start"') }}
{{ field("End", "end", 'type="datetime-local" id="promo-end"') }}
{{ field("Min baht", "min_baht", 'size="6"') }}
{{ field("Max baht", "max_baht", 'size="6"') }}
{{ field("Max redemptions", "max_redemptions", 'size="6"') }}
{{ field("Max per user", "max_per_user", 'size="4"') }}
<label><input type="checkbox" name="new_users_only"> new users only</label>
<label><input type="checkbox" name="first_topup_only"> first top-up only</label></fieldset>
<fieldset><legend>Reward (one of)</legend>
{{ field("Bonus credits", "bonus_credits", 'id="promo-bonus" size="6"') }}
{{ field("Bonus %", "bonus_percentage", 'size="5"') }}
{{ field("Override rate", "override_rate", 'size="5"') }}
{{ field("Tiers", "tiers", 'size="30" placeholder="100-299:400,300-:1300"') }}</fieldset>
<fieldset><legend>Display</legend>
{{ field("Banner text", "banner_text", 'size="40"') }}
{{ field("Banner colour", "banner_color", 'size="8"', "#FF4560") }}</fieldset>
<button id="promo-create">Create promotion</button></form>
<h2>App settings (<code>system_config/app_settings</code>)</h2>
{% if app_settings is none %}<p id="no-settings">system_config/app_settings does not exist.</p>
{% else %}
<table id="settings"><tr><th>field</th><th>value</th></tr>
{% for name, value in app_settings.items() %}<tr><td>{{ name }}</td><td>{{ value }}</td></tr>
{% endfor %}</table>
<form method="post" action="{{ base }}/settings">
<input type="hidden" name="csrf" value="{{ operator.csrf }}">
<label>Field <select name="field" id="settings-field">{% for f in fields %}<option>{{ f }}</option>
{% endfor %}</select></label><br>
<label>Value (lists: comma-separated words; <code>null</code> clears force_update_below)<br>
<textarea name="value" id="settings-value" rows="3" cols="80"></textarea></label><br>
<label>Reason <input name="reason" id="settings-reason" required></label>
<button id="settings-set">Set</button></form>
{% endif %}
{% endblock %}"""

_ENV = Environment(
    loader=DictLoader(
        {
            "base": BASE,
            "login": LOGIN,
            "profit": PROFIT,
            "queue": QUEUE,
            "users": USERS,
            "loss": LOSS,
            "providers": PROVIDERS,
            "promotions": PROMOTIONS,
        }
    ),
    autoescape=select_autoescape(default=True, default_for_string=True),
)


def render(name: str, **context: Any) -> str:
    return _ENV.get_template(name).render(**context)
