"""The console in real headless Chromium (Debian's package, driven by Playwright).

Sign in, see the charts drawn from seeded aggregates, replay a parked Stripe event, approve
a slip and adjust a balance -- each checked in Firestore afterwards. Screenshots go to
``build/console/`` for humans. Skips only when Chromium is not installed.
"""

from __future__ import annotations

import base64
import os
import struct
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from devstack import stripe_send as fx
from tests.helpers import all_documents

CHROMIUM = os.environ.get("CONSOLE_CHROMIUM", "/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parents[2] / "build" / "console"
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason=f"Chromium is not installed at {CHROMIUM} (apt-get install chromium; .ci/run does)",
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        found = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
            ],
        )
        yield found
        found.close()


@pytest.fixture
def page(browser: Any, stack: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    found = context.new_page()
    found.set_default_timeout(20_000)
    found.goto(f"{stack.base_url}/admin-console/")
    assert found.url.endswith("/admin-console/login")
    found.fill("#dev-email", "ops@example.com")
    found.click("#dev-sign-in")
    found.wait_for_url("**/admin-console/profit")
    yield found
    context.close()


def _shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def _png(width: int = 60, height: int = 90) -> bytes:
    """A small real PNG (a grey slip with a green band) for the slip image."""
    rows = b""
    for y in range(height):
        colour = b"\x22\xaa\x55" if 20 <= y < 35 else b"\xee\xee\xee"
        rows += b"\x00" + colour * width

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


# Two different Thai letters drawn in ``el``'s font: without a font for Thai both are the
# same empty box, so the drawings are alike; with one, they differ.
_THAI_GLYPHS_DIFFER = """el => {
  const draw = (t) => {
    const c = document.createElement('canvas');
    c.width = 80; c.height = 60;
    const g = c.getContext('2d');
    g.font = getComputedStyle(el).font;
    g.fillText(t, 10, 40);
    return c.toDataURL();
  };
  return draw('\u0e01') !== draw('\u0e02');
}"""


def test_sign_in_and_see_the_profit_charts(db: Any, page: Any, stack: Any) -> None:
    today = datetime.now(UTC).date()
    days = [today - timedelta(days=n) for n in (3, 2, 1)]
    for n, day in enumerate(days, start=1):
        db.collection("profit_aggregates").document(f"daily_{day:%Y_%m_%d}").set(
            {
                "period_id": f"daily_{day:%Y_%m_%d}",
                "period_type": "daily",
                "total_revenue_usd": 10.0 * n,
                "total_cost_usd": 4.0 * n,
                "total_profit_usd": 6.0 * n,
                "profit_margin_percent": 60.0,
                "cost_by_engine": {
                    "openai_chat_gpt4": {"cost_usd": 3.0 * n, "usage_count": n},
                    "elevenlabs_tts": {"cost_usd": 1.0 * n, "usage_count": 2 * n},
                },
                "revenue_by_plan": {
                    "pro": {"revenue_usd": 8.0 * n, "user_count": 2, "generation_count": 5 * n},
                    "free": {"revenue_usd": 2.0 * n, "user_count": 5, "generation_count": n},
                },
                "profit_by_plan": {
                    "pro": {"profit_usd": 6.0 * n, "cost_usd": 2.0 * n, "revenue_usd": 8.0 * n},
                    "free": {"profit_usd": 0.0, "cost_usd": 2.0 * n, "revenue_usd": 2.0 * n},
                },
            }
        )
    db.collection("profit_aggregates").document(f"monthly_{today:%Y_%m}").set(
        {"total_revenue_usd": 60.0, "total_cost_usd": 24.0, "total_profit_usd": 36.0}
    )
    page.reload()
    page.wait_for_function("() => window.Chart && Chart.getChart('daily-chart')")
    drawn = page.evaluate("() => Chart.getChart('daily-chart').data.datasets.map(d => d.data)")
    assert drawn == [[10, 20, 30], [4, 8, 12], [6, 12, 18]]
    labels = page.evaluate("() => Chart.getChart('daily-chart').data.labels")
    assert labels == [d.isoformat() for d in days]
    monthly = page.evaluate("() => Chart.getChart('monthly-chart').data.datasets[2].data")
    assert monthly[-1] == 36
    # The canvas really has pixels on it, not just a configured chart.
    painted = page.evaluate(
        """() => { const c = document.getElementById('daily-chart');
        const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < px.length; i += 4) if (px[i]) n++; return n; }"""
    )
    assert painted > 1000
    assert "openai_chat_gpt4" in page.inner_text("#engines")
    # Cost by engine and plan mix, summed over the range's days (1 + 2 + 3 = 6 shares).
    engines = page.evaluate(
        "() => { const c = Chart.getChart('engine-chart'); "
        "return [c.data.labels, c.data.datasets[0].data]; }"
    )
    assert engines == [["elevenlabs_tts", "openai_chat_gpt4"], [6, 18]]
    plans = page.evaluate(
        "() => { const c = Chart.getChart('plan-chart'); "
        "return [c.data.labels, c.data.datasets[0].data]; }"
    )
    assert plans == [["free", "pro"], [12, 48]]
    rows = page.inner_text("#plans")
    assert "pro\t48.0000\t12.0000\t36.0000\t75.0\t30\t6" in rows
    # The range narrows what is summed.
    page.fill("input[name=start]", days[2].isoformat())
    page.click("main form button")
    page.wait_for_function(
        "() => window.Chart && Chart.getChart('plan-chart') "
        "&& Chart.getChart('plan-chart').data.datasets[0].data[1] === 24"
    )
    page.goto(page.url.split("?")[0])
    page.wait_for_function("() => window.Chart && Chart.getChart('plan-chart')")
    _shot(page, "profit")


def test_replay_a_parked_stripe_event(db: Any, page: Any, stack: Any) -> None:
    from devstack.demo import billing as demo_billing

    demo_billing.seed(db, datetime.now(UTC))
    session = fx.checkout_session(
        user_id=None,
        price_id="price_credits_500",
        payment_intent=fx.new_id("pi"),
        customer="cus_console",
        amount_total=500,
        payment_status="paid",
    )
    evt = fx.event("checkout.session.completed", session)
    answer = fx.send(f"{stack.base_url}/stripe-webhook", evt, secret="whsec_demo_local_only")
    assert answer.json()["status"] == "parked"
    user = demo_billing.demo_user("kitesforu", datetime.now(UTC))
    db.collection("users").document("u9").set(
        {
            **user,
            "email": "u9@example.com",
            "credits_balance": 0,
            "stripe_customer_id": "cus_console",
        }
    )
    db.collection("stripe_clawback_shortfalls").document("evt_console_refund").set(
        {
            "user_id": "u7",
            "payment_intent_id": "pi_console_7",
            "original_transaction_id": "t7",
            "refund_transaction_id": "t8",
            "reason": "dispute",
            "requested_credits": 500,
            "clawed_credits": 120,
            "shortfall_credits": 380,
            "created_at": datetime.now(UTC),
        }
    )
    page.goto(f"{stack.base_url}/admin-console/queue")
    assert evt["id"] in page.inner_text("#parked")
    assert "evt_console_refund" in page.inner_text("#shortfalls")
    _shot(page, "queue")
    page.fill(f"#replay-reason-{evt['id']}", "customer linked")
    page.click(f"#replay-{evt['id']}")
    page.wait_for_selector("#notice")
    assert "applied" in page.inner_text("#notice")
    assert db.collection("users").document("u9").get().get("credits_balance") == 500
    parked = db.collection("stripe_parked_events").document(evt["id"]).get().to_dict()
    assert parked["status"] != "parked"
    assert "no parked events" in page.inner_text("#parked")
    [action] = [d for p, d in all_documents(db).items() if p.startswith("admin_actions/")]
    assert (action["action"], action["event_id"], action["outcome"]) == (
        "stripe_replay",
        evt["id"],
        "applied",
    )
    assert (action["actor"], action["reason"], action["ip_address"]) == (
        "console:ops@example.com",
        "customer linked",
        "127.0.0.1",
    )


def test_approve_a_slip_seeing_its_image(db: Any, page: Any, stack: Any) -> None:
    from devstack.demo import bigeye
    from shared.bigeye import slipimages
    from shared.bigeye.topup import _pending_slip
    from tests.bigeye_money.conftest import make_user

    now = datetime.now(UTC)
    bigeye.seed(db, now)
    make_user(db, "slipper")
    image = "data:image/png;base64," + base64.b64encode(_png()).decode()
    image_url = slipimages.store(slipimages.decode(image))
    db.collection("slips").document("slip-console-1").set(
        _pending_slip("slipper", image_url, now - timedelta(hours=1))
    )
    page.goto(f"{stack.base_url}/admin-console/queue")
    page.wait_for_function(
        "() => { const i = document.querySelector('img.slip'); return i && i.complete "
        "&& i.naturalWidth === 60; }"
    )
    _shot(page, "slips")
    page.fill("#approve-reason-slip-console-1", "checked the bank statement")
    page.fill("#slips-pending input[name=bank_ref]", "TR-CONSOLE-1")
    page.fill("#slips-pending input[name=amount]", "100")
    page.click("#approve-slip-console-1")
    page.wait_for_selector("#notice")
    assert "approved slip-console-1" in page.inner_text("#notice")
    slip = db.collection("slips").document("slip-console-1").get().to_dict()
    assert slip["status"] == "VERIFIED" and slip["verification_method"] == "MANUAL"
    credits = db.collection("users").document("slipper").get().get("credits")
    assert credits == slip["amount_credited"] > 0
    actions = [d for p, d in all_documents(db).items() if p.startswith("admin_actions/")]
    assert [(a["action"], a["actor"], a["ip_address"]) for a in actions] == [
        ("slip_approve", "console:ops@example.com", "127.0.0.1")
    ]


def test_adjust_a_balance(db: Any, page: Any, stack: Any) -> None:
    db.collection("users").document("u1").set({"email": "u1@example.com", "credits_balance": 0})
    page.goto(f"{stack.base_url}/admin-console/users")
    page.fill("#user-q", "u1@example.com")
    page.click("#find")
    page.wait_for_selector("#balance")
    assert page.inner_text("#balance") == "0"
    page.fill("#adjust-amount", "40")
    page.fill("#adjust-reason", "support ticket 42")
    page.click("#adjust")
    page.wait_for_selector("#notice")
    assert page.inner_text("#balance") == "40"
    assert "support ticket 42" in page.inner_text("#transactions")
    _shot(page, "users")
    assert db.collection("users").document("u1").get().get("credits_balance") == 40
    actions = [d for p, d in all_documents(db).items() if p.startswith("admin_actions/")]
    assert len(actions) == 1 and actions[0]["reason"] == "support ticket 42"


def test_loss_action_and_alert_acknowledgement(db: Any, page: Any, stack: Any) -> None:
    from tests.console import seed

    seed.loss_user(db)
    alerts = seed.provider_outage(db)
    page.click("nav >> text=Loss users")
    page.wait_for_selector("#loss-users")
    assert "4" in page.inner_text(f"#loss-{seed.LOSS_USER}")
    page.select_option(f"#loss-action-{seed.LOSS_USER}", "rate_limited")
    page.fill(f"#loss-reason-{seed.LOSS_USER}", "free plan on GPT-4 all day")
    page.click(f"#loss-set-{seed.LOSS_USER}")
    page.wait_for_selector("#notice")
    assert "action_taken rate_limited" in page.inner_text("#notice")
    assert page.inner_text(f"#loss-{seed.LOSS_USER} .action-taken") == "rate_limited"
    entry = db.collection("loss_users").document(seed.LOSS_USER).get().to_dict()
    assert entry["action_taken"] == "rate_limited"
    assert entry["notes"] == "free plan on GPT-4 all day"
    _shot(page, "loss")

    page.click("nav >> text=Providers")
    page.wait_for_selector("#alerts")
    assert "open" in page.inner_text("#breakers")
    _shot(page, "providers")
    first = alerts[0]
    page.fill(f"[id='ack-reason-{first}']", "paged the on-call")
    page.click(f"[id='ack-{first}']")
    page.wait_for_selector("#notice")
    assert f"{first} acknowledged" in page.inner_text("#notice")
    assert db.collection("model_router_alerts").document(first).get().get("acknowledged") is True
    assert page.locator(f"[id='ack-{first}']").count() == 0
    acks = [
        d
        for p, d in all_documents(db).items()
        if p.startswith("admin_actions/") and d["action"] == "router_alert_ack"
    ]
    assert [(a["alert_id"], a["actor"]) for a in acks] == [(first, "console:ops@example.com")]


def test_create_and_pause_a_promotion(db: Any, page: Any, stack: Any) -> None:
    from tests.console import seed

    seed.promotions_and_settings(db)
    page.click("nav >> text=Promotions and settings")
    page.wait_for_selector("#promotion-form")
    page.fill("#promo-id", seed.PROMO)
    page.fill("#promo-name", "Songkran bonus")
    page.select_option("#promo-type", "FLAT_BONUS")
    page.select_option("#promo-status", "ACTIVE")
    page.fill("#promo-end", (datetime.now(UTC) + timedelta(days=7)).strftime("%Y-%m-%dT%H:%M"))
    page.fill("#promo-bonus", "50")
    page.click("#promo-create")
    page.wait_for_selector("#notice")
    assert f"created {seed.PROMO} (ACTIVE)" in page.inner_text("#notice")
    doc = db.collection("promotions").document(seed.PROMO).get().to_dict()
    assert doc["status"] == "ACTIVE" and doc["reward"]["bonus_credits"] == 50
    page.fill(f"#promo-reason-{seed.PROMO}", "budget spent")
    page.click(f"#pause-{seed.PROMO}")
    page.wait_for_selector("#notice")
    assert f"{seed.PROMO} is PAUSED" in page.inner_text("#notice")
    assert page.inner_text(f"#promo-{seed.PROMO} .promo-status") == "PAUSED"
    assert db.collection("promotions").document(seed.PROMO).get().get("status") == "PAUSED"
    page.select_option("#settings-field", "maintenance_message")
    page.fill("#settings-value", "Back at 10:00")
    page.fill("#settings-reason", "deploy window")
    page.click("#settings-set")
    page.wait_for_selector("#notice")
    app = db.collection("system_config").document("app_settings").get().to_dict()
    assert app["maintenance_message"] == "Back at 10:00"
    records = sorted(
        (d for p, d in all_documents(db).items() if p.startswith("admin_actions/")),
        key=lambda a: a["created_at"],
    )
    assert [(r["action"], r["actor"]) for r in records] == [
        ("promotion_create", "console:ops@example.com"),
        ("promotion_pause", "console:ops@example.com"),
        ("app_settings", "console:ops@example.com"),
    ]
    # BigEye's promotion names are Thai: drawn with a Thai font, not as empty boxes.
    from devstack.demo.bigeye import DEMO_PROMOTION_ID

    name = page.locator(f"#promo-{DEMO_PROMOTION_ID} td").nth(1)
    assert name.inner_text().strip() == "โปรปีใหม่"
    assert name.evaluate(_THAI_GLYPHS_DIFFER), (
        "Thai text is drawn as empty boxes: install a Thai font (apt-get install fonts-thai-tlwg)"
    )
    _shot(page, "promotions")


def test_suspend_and_unban_a_bigeye_user(db: Any, page: Any, stack: Any) -> None:
    from tests.console import seed

    user = seed.bigeye_user(db, credits=100)
    seed.open_hold(user, "job-console-1", 30)
    page.goto(f"{stack.base_url}/admin-console/users?profile=bigeye&q={user}")
    page.wait_for_selector("#account-status")
    assert page.inner_text("#balance") == "70"
    assert "job-console-1" in page.inner_text("#holds")
    page.fill("#status-reason", "chargeback fraud")
    page.click("#suspend")
    page.wait_for_selector("#notice")
    assert page.inner_text("#account-status") == "suspended"
    assert db.collection("users").document(user).get().get("status") == "suspended"
    _shot(page, "users-bigeye")
    page.fill("#status-reason", "cleared by support")
    page.click("#unban")
    page.wait_for_selector("text=is now active")
    assert page.inner_text("#account-status") == "active"
    assert db.collection("users").document(user).get().get("status") == "active"
    statuses = sorted(
        (
            d
            for p, d in all_documents(db).items()
            if p.startswith("admin_actions/") and d["action"].startswith("user_")
        ),
        key=lambda a: a["created_at"],
    )
    assert [(a["before"], a["after"], a["reason"]) for a in statuses] == [
        ("active", "suspended", "chargeback fraud"),
        ("suspended", "active", "cleared by support"),
    ]
