"""Drive the graphwarden simulator with Meta's official Python business SDK (facebook-business
26.0.3), as an independent oracle of payload and error shapes.

Run by crates/graphwarden-sim/tests/it/python_sdk.rs with the venv of scripts/python-oracles.sh.
Only the SDK's public API is used. Facts relied on: meta-graph-reference.md §5 (appsecret_proof),
§7 (error envelope, 190/460), §9 (batch), §10 (cursor paging), §13.1 (SDK internals).

Environment:
  SIM_URL        http://127.0.0.1:PORT (becomes FacebookSession.GRAPH)
  APP_ID         the app of the tokens
  APP_SECRET     its secret: the SDK then sends appsecret_proof on every call
  USER_TOKEN     a working token with ads_read and ads_management
  DEAD_TOKEN     a token invalidated by a password change
  AD_ACCOUNT_ID  numeric ad account id (no act_), holding EXPECTED_CAMPAIGNS campaigns
  CAMPAIGN_ID    a campaign of that account, ACTIVE, to be paused and re-budgeted
  BATCH_CAMPAIGN_IDS  comma-separated campaign ids to read in one batch (at least 3)
  MISSING_ID     an object id that does not exist (a batch item that must fail)
  EXPECTED_CAMPAIGNS  how many campaigns the account holds (default 12)
  PAGE_LIMIT     page size for the paged read (default 5)

Prints one line per check; exits 1 with a clear message at the first failure.
"""

import math
import os
import sys
import traceback


def env(name, default=None):
    value = os.environ.get(name, default)
    if value is None or value == "":
        fail(f"environment variable {name} is not set")
    return value


def fail(message):
    print(f"FAIL: {message}", flush=True)
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)


def ok(message):
    print(f"ok: {message}", flush=True)


SIM_URL = env("SIM_URL").rstrip("/")
APP_ID = env("APP_ID")
APP_SECRET = env("APP_SECRET")
USER_TOKEN = env("USER_TOKEN")
DEAD_TOKEN = env("DEAD_TOKEN")
AD_ACCOUNT_ID = env("AD_ACCOUNT_ID")
CAMPAIGN_ID = env("CAMPAIGN_ID")
BATCH_CAMPAIGN_IDS = [i for i in env("BATCH_CAMPAIGN_IDS").split(",") if i]
MISSING_ID = env("MISSING_ID")
EXPECTED_CAMPAIGNS = int(env("EXPECTED_CAMPAIGNS", "12"))
PAGE_LIMIT = int(env("PAGE_LIMIT", "5"))
API_VERSION = "v26.0"

check(SIM_URL.startswith("http://127.0.0.1:"), f"SIM_URL must be a local simulator, got {SIM_URL}")
check(len(BATCH_CAMPAIGN_IDS) >= 3, "BATCH_CAMPAIGN_IDS needs at least 3 ids")

from facebook_business import apiconfig  # noqa: E402
from facebook_business.adobjects.adaccount import AdAccount  # noqa: E402
from facebook_business.adobjects.campaign import Campaign  # noqa: E402
from facebook_business.api import FacebookAdsApi  # noqa: E402
from facebook_business.exceptions import FacebookRequestError  # noqa: E402
from facebook_business.session import FacebookSession  # noqa: E402

# §13.1: several modules read the CLASS attribute, so set it on the class, before any use.
FacebookSession.GRAPH = SIM_URL

check(
    apiconfig.ads_api_config.get("SDK_VERSION") == "v26.0.3",
    f"expected facebook-business 26.0.3, found {apiconfig.ads_api_config.get('SDK_VERSION')}"
    " (run scripts/python-oracles.sh)",
)
ok(f"facebook-business {apiconfig.ads_api_config['SDK_VERSION']} pointed at {SIM_URL}")


def init(token):
    return FacebookAdsApi.init(
        app_id=APP_ID,
        app_secret=APP_SECRET,
        access_token=token,
        api_version=API_VERSION,
        timeout=20,
        crash_log=False,
    )


def describe(e):
    """A FacebookRequestError in one line, for failure messages."""
    return (
        f"HTTP {e.http_status()} code={e.api_error_code()} subcode={e.api_error_subcode()} "
        f"type={e.api_error_type()} message={e.api_error_message()!r} "
        f"request={e.request_context()!r} body={e.body()!r}"
    )


def header(headers, name):
    """A response header: a requests CaseInsensitiveDict for direct calls."""
    try:
        return headers.get(name)
    except AttributeError:
        return None


def paged_read():
    """(a) §10: a cursor over /act_{id}/campaigns, limit PAGE_LIMIT, followed to the end."""
    account = AdAccount("act_" + AD_ACCOUNT_ID)
    cursor = account.get_campaigns(
        fields=[Campaign.Field.name, Campaign.Field.status],
        params={"limit": PAGE_LIMIT},
    )
    # get_campaigns loads the first page; load_next_page() (public) loads each next one and
    # returns False once a page had no `paging.next`. len(cursor) and cursor[i] read the page.
    pages = 1
    ids = []
    while True:
        for i in range(len(cursor)):
            campaign = cursor[i]
            check(isinstance(campaign, Campaign), f"cursor yielded {type(campaign).__name__}, not Campaign")
            check(
                campaign.get(Campaign.Field.name) not in (None, ""),
                f"campaign {campaign.get('id')} has no name: {campaign.export_all_data()}",
            )
            check(
                campaign.get(Campaign.Field.status) in ("ACTIVE", "PAUSED", "ARCHIVED"),
                f"campaign {campaign.get('id')} has an unexpected status: {campaign.export_all_data()}",
            )
            ids.append(campaign["id"])
        check(pages <= EXPECTED_CAMPAIGNS + 1, f"the cursor does not end: {pages} pages, ids {ids}")
        if not cursor.load_next_page():
            break
        pages += 1
    expected_pages = math.ceil(EXPECTED_CAMPAIGNS / PAGE_LIMIT)
    check(
        len(ids) == EXPECTED_CAMPAIGNS,
        f"paged read saw {len(ids)} campaigns, expected {EXPECTED_CAMPAIGNS}: {ids}",
    )
    check(len(set(ids)) == len(ids), f"paged read saw duplicate ids: {ids}")
    check(pages == expected_pages, f"expected {expected_pages} pages, got {pages}")
    version = header(cursor.headers(), "facebook-api-version")
    check(
        version == API_VERSION,
        f"last page's facebook-api-version header is {version!r}, expected {API_VERSION!r}",
    )
    ok(
        f"paged read: {len(ids)} distinct campaigns of act_{AD_ACCOUNT_ID} over "
        f"{pages} pages of at most {PAGE_LIMIT} (facebook-api-version {version})"
    )


def write_and_read_back():
    """(b) POST /{campaign-id} with status and daily_budget, then GET it back."""
    before = Campaign(CAMPAIGN_ID).api_get(fields=[Campaign.Field.status, Campaign.Field.daily_budget])
    check(
        before[Campaign.Field.status] == "ACTIVE",
        f"campaign {CAMPAIGN_ID} should start ACTIVE, is {before.export_all_data()}",
    )
    Campaign(CAMPAIGN_ID).api_update(
        params={Campaign.Field.status: Campaign.Status.paused, Campaign.Field.daily_budget: 5000}
    )
    after = Campaign(CAMPAIGN_ID).api_get(fields=[Campaign.Field.status, Campaign.Field.daily_budget])
    check(
        after[Campaign.Field.status] == "PAUSED",
        f"after api_update(status=PAUSED) the campaign reads back {after.export_all_data()}",
    )
    # Meta sends budgets in minor units as strings.
    check(
        str(after[Campaign.Field.daily_budget]) == "5000",
        f"after api_update(daily_budget=5000) the campaign reads back {after.export_all_data()}",
    )
    ok(
        f"write: campaign {CAMPAIGN_ID} {before[Campaign.Field.status]} -> "
        f"{after[Campaign.Field.status]}, daily_budget {before[Campaign.Field.daily_budget]} -> "
        f"{after[Campaign.Field.daily_budget]}"
    )


def batch():
    """(c) §9: several reads in one POST /; one more item for an object that does not exist."""
    api = FacebookAdsApi.get_default_api()
    b = api.new_batch()
    successes = {}
    failures = {}

    def on_success(key):
        def callback(response):
            successes[key] = response

        return callback

    def on_failure(key):
        def callback(response):
            failures[key] = response

        return callback

    for cid in BATCH_CAMPAIGN_IDS:
        Campaign(cid).api_get(
            fields=[Campaign.Field.name, Campaign.Field.status, Campaign.Field.account_id],
            batch=b,
            success=on_success(cid),
            failure=on_failure(cid),
        )
    AdAccount("act_" + AD_ACCOUNT_ID).api_get(
        fields=[AdAccount.Field.name, AdAccount.Field.currency],
        batch=b,
        success=on_success("account"),
        failure=on_failure("account"),
    )
    Campaign(MISSING_ID).api_get(
        fields=[Campaign.Field.name],
        batch=b,
        success=on_success("missing"),
        failure=on_failure("missing"),
    )
    check(len(b) == len(BATCH_CAMPAIGN_IDS) + 2, f"batch holds {len(b)} calls")
    retry = b.execute()
    check(retry is None, "batch.execute() returned items to retry (null answers)")

    for cid in BATCH_CAMPAIGN_IDS:
        if cid in failures:
            fail(f"batch item for campaign {cid} failed: {describe(failures[cid].error())}")
        check(cid in successes, f"no callback for batch item of campaign {cid}")
        response = successes[cid]
        check(response.status() == 200, f"batch item {cid}: code {response.status()}, expected 200")
        data = response.json()
        check(isinstance(data, dict), f"batch item {cid}: body is not a JSON object: {response.body()!r}")
        check(data.get("id") == cid, f"batch item {cid}: body has id {data.get('id')!r}: {data}")
        check(
            data.get("account_id") == AD_ACCOUNT_ID,
            f"batch item {cid}: account_id {data.get('account_id')!r}, expected {AD_ACCOUNT_ID}",
        )
        check(bool(data.get("name")), f"batch item {cid}: no name: {data}")
        check(data.get("status") in ("ACTIVE", "PAUSED"), f"batch item {cid}: status {data}")
        # §9: headers per item are a list of {name, value}.
        headers = response.headers()
        check(
            isinstance(headers, list) and all(isinstance(h, dict) and "name" in h and "value" in h for h in headers),
            f"batch item {cid}: headers are not a list of {{name, value}}: {headers!r}",
        )
    paused = successes[CAMPAIGN_ID].json()["status"] if CAMPAIGN_ID in successes else None
    if paused is not None:
        check(paused == "PAUSED", f"batch read of {CAMPAIGN_ID} does not see the earlier write: {paused}")

    if "account" in failures:
        fail(f"batch item for act_{AD_ACCOUNT_ID} failed: {describe(failures['account'].error())}")
    check("account" in successes, "no callback for the ad-account batch item")
    account = successes["account"].json()
    check(
        account.get("id") == "act_" + AD_ACCOUNT_ID,
        f"batch ad-account item: id {account.get('id')!r}, expected act_{AD_ACCOUNT_ID}: {account}",
    )
    check(bool(account.get("currency")), f"batch ad-account item: no currency: {account}")

    check("missing" not in successes, "the batch item for a missing object succeeded")
    check("missing" in failures, "no failure callback for the batch item of a missing object")
    err = failures["missing"].error()
    check(isinstance(err, FacebookRequestError), f"error() is {type(err).__name__}")
    check(
        err.api_error_code() == 100 and err.api_error_subcode() == 33,
        f"missing object in a batch: expected code 100 subcode 33 (§7.2), got {describe(err)}",
    )
    check(err.http_status() == 400, f"missing object in a batch: expected code 400, got {describe(err)}")
    ok(
        f"batch: {len(BATCH_CAMPAIGN_IDS)} campaigns and act_{AD_ACCOUNT_ID} through success "
        f"callbacks; missing object {MISSING_ID} through the failure callback "
        f"({err.api_error_code()}/{err.api_error_subcode()}, HTTP {err.http_status()})"
    )


def dead_token():
    """(d) §7.1, §7.3: a token killed by a password change: 190/460, HTTP 400, OAuthException."""
    init(DEAD_TOKEN)
    try:
        account = AdAccount("act_" + AD_ACCOUNT_ID).api_get(fields=[AdAccount.Field.name])
    except FacebookRequestError as e:
        check(e.http_status() == 400, f"dead token: expected HTTP 400, got {describe(e)}")
        check(e.api_error_code() == 190, f"dead token: expected code 190, got {describe(e)}")
        check(e.api_error_subcode() == 460, f"dead token: expected subcode 460, got {describe(e)}")
        check(
            e.api_error_type() == "OAuthException",
            f"dead token: expected type OAuthException, got {describe(e)}",
        )
        check(e.api_transient_error() is False, f"dead token: is_transient should be false: {describe(e)}")
        body = e.body()
        check(
            isinstance(body, dict) and bool(body.get("error", {}).get("fbtrace_id")),
            f"dead token: the error carries no fbtrace_id: {body!r}",
        )
        ok(
            f"dead token: FacebookRequestError HTTP {e.http_status()} "
            f"{e.api_error_type()} {e.api_error_code()}/{e.api_error_subcode()}: {e.api_error_message()}"
        )
        return
    fail(f"dead token: the call succeeded: {account.export_all_data()}")


def main():
    init(USER_TOKEN)
    for step in (paged_read, write_and_read_back, batch, dead_token):
        try:
            step()
        except FacebookRequestError as e:
            fail(f"{step.__name__}: unexpected FacebookRequestError: {describe(e)}")
        except SystemExit:
            raise
        except Exception:  # noqa: BLE001 - report anything else with its traceback
            fail(f"{step.__name__}: unexpected exception:\n{traceback.format_exc()}")
    print("all facebook-business checks passed", flush=True)


if __name__ == "__main__":
    main()
