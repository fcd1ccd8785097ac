//! Faults the control API can inject per route: latency, HTTP 5xx, time-outs, dropped
//! connections, malformed or truncated bodies, a wrong content type.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// Answer normally, after `latency_ms`.
    Latency,
    /// Answer with `status` (default 503) and Meta's code-2 transient error.
    ServerError,
    /// Hold the request for `latency_ms` (default 60 s) and then drop it unanswered.
    Timeout,
    /// Close the connection without answering.
    DropConnection,
    /// Answer 200 with a body that is not JSON.
    MalformedBody,
    /// Promise more bytes than are sent, then close.
    TruncatedBody,
    /// Answer the normal body labelled `text/html`.
    WrongContentType,
}

/// One injected fault.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// A path prefix after the version (`/debug_token`, `/act_`), or `*` for every Graph route.
    pub route: String,
    pub kind: FaultKind,
    #[serde(default)]
    pub latency_ms: u64,
    #[serde(default)]
    pub status: Option<u16>,
    /// Apply to this many calls, then remove itself; absent = until cleared.
    #[serde(default)]
    pub times: Option<u32>,
}

impl Fault {
    pub fn matches(&self, path: &str) -> bool {
        self.route == "*" || path.starts_with(&self.route)
    }
}

/// Take the first fault that matches `path`, counting down its `times`.
pub fn take(faults: &mut Vec<Fault>, path: &str) -> Option<Fault> {
    let index = faults.iter().position(|f| f.matches(path))?;
    let fault = faults[index].clone();
    match &mut faults[index].times {
        Some(1) => {
            faults.remove(index);
        }
        Some(n) => *n -= 1,
        None => {}
    }
    Some(fault)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_match_by_prefix_and_count_down() {
        let mut faults = vec![Fault {
            route: "/debug_token".into(),
            kind: FaultKind::ServerError,
            latency_ms: 0,
            status: None,
            times: Some(2),
        }];
        assert!(take(&mut faults, "/me").is_none());
        assert!(take(&mut faults, "/debug_token").is_some());
        assert!(take(&mut faults, "/debug_token").is_some());
        assert!(take(&mut faults, "/debug_token").is_none());
    }
}
