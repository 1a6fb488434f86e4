"""An operator browses an account's stream back in time, then rebuilds a projection and watches it finish."""

from __future__ import annotations

from typing import Any

import pytest

from console.demo.accounts import account_withdraw
from console.demo.models import AccountBalance
from console.eventsourcing.models import RebuildRun
from tests.conftest import Worker
from tests.eventsourcing.conftest import open_account

pytestmark = pytest.mark.browser


def test_move_a_stream_to_an_earlier_version_and_see_the_earlier_state(signed_in_page: Any) -> None:
    page = signed_in_page
    open_account("acc-e2e", owner="Ada", deposit=500)
    account_withdraw(account_id="acc-e2e", amount=120, actor=None)

    page.get_by_role("navigation", name="Console sections").get_by_role("link", name="Streams").click()
    page.wait_for_url("**/streams/")
    page.get_by_role("link", name="acc-e2e", exact=True).click()
    page.wait_for_url("**/streams/acc-e2e/")
    state = page.locator("#state")
    assert "State at version 3 of 3" in state.inner_text()
    assert "380" in page.locator("#state-facts").inner_text()

    page.get_by_role("navigation", name="Versions").get_by_role("link", name="v2", exact=True).click()
    # Only the state swaps in (htmx), and the URL says which version is shown.
    page.wait_for_url("**/streams/acc-e2e/?version=2")
    page.get_by_role("heading", name="State at version 2 of 3").wait_for()
    facts = page.locator("#state-facts").inner_text()
    assert "500" in facts and "380" not in facts
    assert "balance" in page.locator("#state-diff").inner_text()


def test_start_a_rebuild_and_watch_its_progress_finish(signed_in_page: Any, worker: Worker) -> None:
    page = signed_in_page
    for n in range(20):
        open_account(f"acc-{n:02d}", deposit=100 + n)
    AccountBalance.objects.update(balance=0)  # a broken read model the rebuild repairs

    page.get_by_role("navigation", name="Console sections").get_by_role("link", name="Projections").click()
    page.wait_for_url("**/projections/")
    page.get_by_role("button", name="Rebuild accounts.balances", exact=True).click()
    page.wait_for_url("**/projections/")
    run = RebuildRun.objects.get()
    row = page.locator(f"#rebuild-{run.pk}")
    row.wait_for()
    # The table polls while the rebuild runs and stops polling once it is done.
    page.locator(f"#rebuild-{run.pk} .badge.live").wait_for(timeout=30_000)
    assert "100% · 40 of 40 events" in row.inner_text(), worker.output()
    assert page.locator("#projections-table").get_attribute("hx-trigger") is None
    assert sorted(AccountBalance.objects.values_list("balance", flat=True)) == [100 + n for n in range(20)]
