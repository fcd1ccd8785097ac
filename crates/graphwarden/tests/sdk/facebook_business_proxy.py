"""Meta's official Python business SDK (facebook-business 26.0.3) through graphwarden's proxy,
unchanged but for its base URL, holding no Meta token: its access token is a graphwarden
consumer key, and the proxy injects the stored token (and its appsecret_proof).

Run by crates/graphwarden/tests/it/proxy.rs with the venv of scripts/python-oracles.sh.

Environment:
  PROXY_URL           http://127.0.0.1:PORT (becomes FacebookSession.GRAPH)
  KEY                 a graphwarden consumer key naming one stored token
  AD_ACCOUNT_ID       numeric ad account id (no act_) holding EXPECTED_CAMPAIGNS campaigns
  CAMPAIGN_ID         an ACTIVE campaign of that account, to be paused and re-budgeted
  BATCH_CAMPAIGN_IDS  comma-separated campaign ids to read in one batch
  MISSING_ID          an object id that does not exist
  EXPECTED_CAMPAIGNS  default 12

Prints one line per check; exits 1 with a clear message at the first failure.
"""

import os
import sys


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


PROXY_URL = env("PROXY_URL").rstrip("/")
KEY = env("KEY")
AD_ACCOUNT_ID = env("AD_ACCOUNT_ID")
CAMPAIGN_ID = env("CAMPAIGN_ID")
BATCH_CAMPAIGN_IDS = [i for i in env("BATCH_CAMPAIGN_IDS").split(",") if i]
MISSING_ID = env("MISSING_ID")
EXPECTED_CAMPAIGNS = int(env("EXPECTED_CAMPAIGNS", "12"))

check(KEY.startswith("gwk_"), "KEY must be a graphwarden key")

from facebook_business.adobjects.adaccount import AdAccount  # noqa: E402
from facebook_business.adobjects.campaign import Campaign  # noqa: E402
from facebook_business.api import FacebookAdsApi  # noqa: E402
from facebook_business.exceptions import FacebookRequestError  # noqa: E402
from facebook_business.session import FacebookSession  # noqa: E402

FacebookSession.GRAPH = PROXY_URL
# No app secret: the SDK cannot make a proof, and holds no Meta token at all.
FacebookAdsApi.init(access_token=KEY, api_version="v26.0", timeout=20, crash_log=False)
ok(f"facebook-business pointed at {PROXY_URL} with a graphwarden key for a token")

# (a) a paged read, the SDK's cursor following `after`
cursor = AdAccount("act_" + AD_ACCOUNT_ID).get_campaigns(
    fields=[Campaign.Field.name, Campaign.Field.status], params={"limit": 5}
)
ids = []
pages = 1
while True:
    for i in range(len(cursor)):
        ids.append(cursor[i]["id"])
    if not cursor.load_next_page():
        break
    pages += 1
    check(pages < 10, f"the cursor does not end: {ids}")
check(len(set(ids)) == EXPECTED_CAMPAIGNS, f"saw {len(ids)} campaigns: {ids}")
ok(f"paged read: {len(ids)} campaigns over {pages} pages")

# (b) a write, read back
Campaign(CAMPAIGN_ID).api_update(params={Campaign.Field.status: "PAUSED", Campaign.Field.daily_budget: 5000})
after = Campaign(CAMPAIGN_ID).api_get(fields=[Campaign.Field.status, Campaign.Field.daily_budget])
check(after[Campaign.Field.status] == "PAUSED", f"read back {after.export_all_data()}")
check(str(after[Campaign.Field.daily_budget]) == "5000", f"read back {after.export_all_data()}")
ok("write: paused and re-budgeted, read back")

# (c) a batch with one failing item
api = FacebookAdsApi.get_default_api()
batch = api.new_batch()
successes, failures = {}, {}
for cid in BATCH_CAMPAIGN_IDS + [MISSING_ID]:
    Campaign(cid).api_get(
        fields=[Campaign.Field.name],
        batch=batch,
        success=(lambda key: lambda r: successes.__setitem__(key, r))(cid),
        failure=(lambda key: lambda r: failures.__setitem__(key, r))(cid),
    )
retry = batch.execute()
check(retry is None, f"items left unfinished: {retry}")
check(sorted(successes) == sorted(BATCH_CAMPAIGN_IDS), f"successes {sorted(successes)}")
check(list(failures) == [MISSING_ID], f"failures {list(failures)}")
err = failures[MISSING_ID].error()
check(err.api_error_code() == 100, f"the missing item's code is {err.api_error_code()}")
ok(f"batch: {len(successes)} items answered, 1 failed with code 100")

# (d) reads until the proxy holds the ad account: the SDK sees Meta's own throttle error
account = AdAccount("act_" + AD_ACCOUNT_ID)
for n in range(200):
    try:
        account.api_get(fields=["name"])
    except FacebookRequestError as e:
        check(e.api_error_code() == 17, f"code {e.api_error_code()}: {e.body()}")
        check(e.api_error_subcode() == 2446079, f"subcode {e.api_error_subcode()}")
        check(e.http_status() == 400, f"HTTP {e.http_status()}")
        check(e.api_transient_error(), "a throttle is transient")
        check("graphwarden" in e.api_error_message(), e.api_error_message())
        ok(f"throttle after {n} more reads: code 17/2446079, is_transient, Retry-After {e.http_headers().get('Retry-After')}")
        break
else:
    fail("200 reads and no throttle")
print("all checks passed", flush=True)
