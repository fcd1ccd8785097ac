//! The usage headers of recent answers, parsed once.
//!
//! Meta reports usage in whole percents, so most answers carry the same usage headers as the
//! answer before them, byte for byte. Each proxy worker thread keeps the last few distinct
//! sets it parsed, keyed by the headers' raw bytes, and hands out the parsed [`Usage`] (and
//! its JSON, for the call record) without parsing again. A set that differs in any byte is
//! parsed afresh; an answer that repeats a usage header is parsed without the cache.

use std::cell::RefCell;
use std::sync::Arc;

use graphwarden_core::usage::Usage;
use http::header::{HeaderMap, HeaderName, HeaderValue};

/// Meta's usage headers (`graphwarden_core::usage::USAGE_HEADERS`), as header names.
static NAMES: [HeaderName; 5] = [
    HeaderName::from_static("x-app-usage"),
    HeaderName::from_static("x-page-usage"),
    HeaderName::from_static("x-ad-account-usage"),
    HeaderName::from_static("x-business-use-case-usage"),
    HeaderName::from_static("x-fb-ads-insights-throttle"),
];

/// Distinct header sets kept per thread.
const SLOTS: usize = 32;

/// One answer's usage, parsed.
#[derive(Debug, Default)]
pub struct Parsed {
    pub usage: Usage,
    /// The highest percentage, `None` when the answer carried no usage.
    pub max_pct: Option<f64>,
    /// `usage` as JSON, for the call record; `None` when there is none.
    pub json: Option<Arc<str>>,
    /// Meta asks to wait (a business use case's regain time).
    pub regain: bool,
}

impl Parsed {
    fn new(usage: Usage) -> Self {
        if usage.is_empty() {
            return Self::default();
        }
        Self {
            max_pct: Some(usage.max_pct()),
            json: serde_json::to_string(&usage).ok().map(Into::into),
            regain: usage
                .business_use_case
                .iter()
                .any(|e| e.estimated_time_to_regain_access > 0.0),
            usage,
        }
    }
}

/// How long the same healthy figures for the same subject are not passed on again.
const RECENT: std::time::Duration = std::time::Duration::from_millis(200);

/// The subject an observation was about (owned copy of a `pacing::Subject`), and for which
/// proxy (several can run in one process, in tests).
struct Seen {
    proxy: usize,
    app_id: Option<String>,
    token_fingerprint: Option<String>,
    ad_account: Option<String>,
    object_id: Option<String>,
    use_case: Option<String>,
    parsed: Arc<Parsed>,
    at: graphwarden_core::Stopwatch,
}

impl Seen {
    fn is(&self, proxy: usize, s: &graphwarden_core::pacing::Subject<'_>) -> bool {
        self.proxy == proxy
            && self.app_id.as_deref() == s.app_id
            && self.token_fingerprint.as_deref() == s.token_fingerprint
            && self.ad_account.as_deref() == s.ad_account
            && self.object_id.as_deref() == s.object_id
            && self.use_case.as_deref() == s.use_case
    }
}

thread_local! {
    static SEEN: RefCell<Vec<Seen>> = const { RefCell::new(Vec::new()) };
}

/// Whether an answer's usage needs passing to the pacer and the gauges: not when this worker
/// passed the very same figures (the same parse) for the same subject within [`RECENT`], they
/// were all below `calm_below` percent and asked for no wait, and the answer is no error. A
/// subject's entry always holds its latest answer, so a change (a hold starting or ending)
/// is never skipped. `now` is when the call began (a reading the call took already: a
/// refresh may come up to a call's duration early or late).
pub fn needs_observing(
    proxy: usize,
    subject: &graphwarden_core::pacing::Subject<'_>,
    parsed: &Arc<Parsed>,
    error: bool,
    calm_below: f64,
    now: graphwarden_core::Stopwatch,
) -> bool {
    SEEN.with(|seen| {
        let mut seen = seen.borrow_mut();
        let calm = !error && !parsed.regain && parsed.max_pct.is_some_and(|p| p < calm_below);
        let at = seen.iter().position(|e| e.is(proxy, subject));
        if let Some(i) = at {
            let e = &mut seen[i];
            if calm && Arc::ptr_eq(&e.parsed, parsed) && now.since(e.at) < RECENT {
                return false;
            }
            e.parsed = Arc::clone(parsed);
            e.at = now;
            return true;
        }
        if seen.len() >= SLOTS {
            seen.remove(0);
        }
        seen.push(Seen {
            proxy,
            app_id: subject.app_id.map(str::to_owned),
            token_fingerprint: subject.token_fingerprint.map(str::to_owned),
            ad_account: subject.ad_account.map(str::to_owned),
            object_id: subject.object_id.map(str::to_owned),
            use_case: subject.use_case.map(str::to_owned),
            parsed: Arc::clone(parsed),
            at: now,
        });
        true
    })
}

type Raw = [Option<HeaderValue>; 5];

struct Cache {
    slots: Vec<(Raw, Arc<Parsed>)>,
    next: usize,
}

thread_local! {
    static CACHE: RefCell<Cache> = const { RefCell::new(Cache { slots: Vec::new(), next: 0 }) };
}

fn same(raw: &Raw, found: &[Option<&HeaderValue>; 5]) -> bool {
    raw.iter().zip(found).all(|(a, b)| match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => same_bytes(a.as_bytes(), b.as_bytes()),
        _ => false,
    })
}

/// Whether two byte strings are equal; at once when they are the same bytes in the same place
/// (a value the answer parser remembered and handed out again, `h1::SeenLine`: the usual
/// case, which then reads neither).
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    (std::ptr::eq(a.as_ptr(), b.as_ptr()) && a.len() == b.len()) || a == b
}

fn parse(found: &[Option<&HeaderValue>; 5]) -> Usage {
    Usage::from_headers(
        NAMES
            .iter()
            .zip(found)
            .filter_map(|(n, v)| Some((n.as_str(), v.as_ref()?.to_str().ok()?))),
    )
}

/// Where `name` is among Meta's usage headers.
pub fn usage_index(name: &HeaderName) -> Option<usize> {
    NAMES.iter().position(|n| n == name)
}

/// The usage headers of an answer, as [`usage_found`] takes them.
#[derive(Debug, Default)]
pub struct Found<'h> {
    values: [Option<&'h HeaderValue>; 5],
    repeated: bool,
}

impl<'h> Found<'h> {
    /// Note one of the answer's headers; those that are not usage headers are ignored.
    pub fn note(&mut self, name: &HeaderName, value: &'h HeaderValue) {
        if let Some(i) = usage_index(name) {
            if self.values[i].is_some() {
                self.repeated = true;
            } else {
                self.values[i] = Some(value);
            }
        }
    }
}

/// The usage an answer's headers report.
#[cfg(test)]
pub fn usage_of(headers: &HeaderMap) -> Arc<Parsed> {
    let mut found = Found::default();
    for (name, value) in headers {
        found.note(name, value);
    }
    usage_found(&found, headers)
}

/// The usage an answer reports, from its usage headers as noted while the proxy went over
/// them (once, for everything it looks at), parsed or from this thread's cache.
pub fn usage_found(found: &Found<'_>, headers: &HeaderMap) -> Arc<Parsed> {
    if found.repeated {
        // A repeated header: rare, parsed as it is (every value is read).
        return Arc::new(Parsed::new(Usage::from_headers(
            headers
                .iter()
                .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?))),
        )));
    }
    let found = &found.values;
    if found.iter().all(Option::is_none) {
        return empty();
    }
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some((_, parsed)) = cache.slots.iter().find(|(raw, _)| same(raw, found)) {
            return Arc::clone(parsed);
        }
        let parsed = Arc::new(Parsed::new(parse(found)));
        let raw: Raw = found.map(|v| v.cloned());
        if cache.slots.len() < SLOTS {
            cache.slots.push((raw, Arc::clone(&parsed)));
        } else {
            let at = cache.next;
            cache.slots[at] = (raw, Arc::clone(&parsed));
            cache.next = (at + 1) % SLOTS;
        }
        parsed
    })
}

fn empty() -> Arc<Parsed> {
    thread_local! {
        static EMPTY: Arc<Parsed> = Arc::new(Parsed::default());
    }
    EMPTY.with(Arc::clone)
}

#[cfg(test)]
mod tests {
    use super::*;
    use graphwarden_core::pacing::Subject;

    #[test]
    fn the_same_calm_figures_again_are_skipped_and_any_change_is_not() {
        let calm = usage_of(&headers(&[(
            "x-app-usage",
            r#"{"call_count":12,"total_time":1,"total_cputime":1}"#,
        )]));
        let hot = usage_of(&headers(&[(
            "x-app-usage",
            r#"{"call_count":96,"total_time":1,"total_cputime":1}"#,
        )]));
        let s = Subject {
            app_id: Some("app-skip-test"),
            token_fingerprint: None,
            ad_account: None,
            object_id: None,
            use_case: None,
        };
        let other = Subject {
            app_id: Some("app-skip-test-2"),
            ..s
        };
        let now = graphwarden_core::Stopwatch::start();
        assert!(needs_observing(1, &s, &calm, false, 75.0, now));
        assert!(
            !needs_observing(1, &s, &calm, false, 75.0, now),
            "the same again"
        );
        assert!(
            needs_observing(2, &s, &calm, false, 75.0, now),
            "another proxy"
        );
        assert!(
            needs_observing(1, &other, &calm, false, 75.0, now),
            "another subject"
        );
        assert!(
            needs_observing(1, &s, &calm, true, 75.0, now),
            "an error always"
        );
        assert!(needs_observing(1, &s, &hot, false, 75.0, now), "a change");
        assert!(
            needs_observing(1, &s, &hot, false, 75.0, now),
            "hot figures always"
        );
        assert!(
            needs_observing(1, &s, &calm, false, 75.0, now),
            "back to calm"
        );
        assert!(!needs_observing(1, &s, &calm, false, 75.0, now));
        assert!(
            needs_observing(1, &s, &calm, false, 10.0, now),
            "calm is relative"
        );
    }

    #[test]
    fn byte_strings_are_the_same_in_place_or_by_content() {
        let a = b"{\"call_count\":12}".to_vec();
        let b = a.clone();
        assert!(same_bytes(&a, &a));
        assert!(same_bytes(&a, &b));
        assert!(!same_bytes(&a, &b[1..]));
        assert!(
            !same_bytes(&a[..3], &a[..4]),
            "the same place, another length"
        );
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn repeated_headers_are_parsed_once_and_changed_ones_again() {
        let a = headers(&[
            ("content-type", "application/json"),
            (
                "x-app-usage",
                r#"{"call_count":10,"total_time":5,"total_cputime":5}"#,
            ),
        ]);
        let first = usage_of(&a);
        let again = usage_of(&a);
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!(first.max_pct, Some(10.0));
        assert!(
            first
                .json
                .as_deref()
                .is_some_and(|j| j.contains("call_count"))
        );

        let b = headers(&[(
            "x-app-usage",
            r#"{"call_count":11,"total_time":5,"total_cputime":5}"#,
        )]);
        let changed = usage_of(&b);
        assert!(!Arc::ptr_eq(&first, &changed));
        assert_eq!(changed.max_pct, Some(11.0));
    }

    #[test]
    fn no_usage_is_empty_and_repeated_headers_are_all_read() {
        let none = usage_of(&headers(&[("content-type", "application/json")]));
        assert!(none.usage.is_empty());
        assert_eq!(none.max_pct, None);
        assert!(none.json.is_none());

        let twice = usage_of(&headers(&[
            (
                "x-business-use-case-usage",
                r#"{"1":[{"type":"ads_management","call_count":5}]}"#,
            ),
            (
                "x-business-use-case-usage",
                r#"{"2":[{"type":"ads_insights","call_count":90}]}"#,
            ),
        ]));
        assert_eq!(twice.usage.business_use_case.len(), 2);
        assert_eq!(twice.max_pct, Some(90.0));
    }

    #[test]
    fn more_distinct_sets_than_slots_stay_correct() {
        let values: Vec<String> = (0..(SLOTS as u32 * 2))
            .map(|i| format!(r#"{{"call_count":{i},"total_time":0,"total_cputime":0}}"#))
            .collect();
        for round in 0..2 {
            for (i, v) in values.iter().enumerate() {
                let mut h = HeaderMap::new();
                h.insert("x-app-usage", HeaderValue::from_str(v).unwrap());
                assert_eq!(usage_of(&h).max_pct, Some(i as f64), "round {round}");
            }
        }
    }
}
