//! Bodies on the proxy's data path: the answer's body, streamed with an idle time-out and
//! recorded when it ends (or when the caller goes away mid-body); reading a body into memory
//! up to a limit without losing what comes after; and scrubbing a stored token out of an
//! answer before a caller that holds no token sees it.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use graphwarden_core::Stopwatch;
use graphwarden_core::call::CallRecord;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;

use super::Worker;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type ProxyBody = BoxBody<Bytes, BoxError>;

pub fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    http_body_util::Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

pub fn empty() -> ProxyBody {
    full(Bytes::new())
}

/// The records of one call, finished when its answer's body ends.
#[derive(Debug)]
pub struct Pending {
    pub(crate) worker: Arc<Worker>,
    pub records: Vec<CallRecord>,
    pub watch: Stopwatch,
}

impl Pending {
    fn finish(self, aborted: Option<&'static str>) {
        let micros = i64::try_from(self.watch.elapsed().as_micros()).unwrap_or(i64::MAX);
        let worker = self.worker;
        for mut r in self.records {
            r.duration_us = micros;
            if let Some(outcome) = aborted {
                r.outcome = outcome.into();
            }
            worker.finished(r);
        }
    }
}

/// An answer's body that records its call when it ends, fails, stalls or is dropped.
pub struct Observed {
    inner: ProxyBody,
    idle: Duration,
    stall: Option<Pin<Box<tokio::time::Sleep>>>,
    pending: Option<Pending>,
}

impl std::fmt::Debug for Observed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observed")
            .field("idle", &self.idle)
            .field("pending", &self.pending)
            .finish_non_exhaustive()
    }
}

impl Observed {
    pub fn new(inner: ProxyBody, idle: Duration, pending: Pending) -> Self {
        Self {
            inner,
            idle,
            stall: None,
            pending: Some(pending),
        }
    }

    fn finish(&mut self, aborted: Option<&'static str>) {
        if let Some(p) = self.pending.take() {
            p.finish(aborted);
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("Graph stopped sending the answer for longer than the proxy's idle time-out")]
struct Stalled;

impl Body for Observed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.stall = None;
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                tracing::warn!(error = %e, "The answer's body broke off upstream.");
                this.finish(Some("failed"));
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                this.finish(None);
                Poll::Ready(None)
            }
            Poll::Pending => {
                let idle = this.idle;
                let stall = this
                    .stall
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                if stall.as_mut().poll(cx).is_ready() {
                    tracing::warn!(?idle, "Graph stalled mid-answer; cutting the answer off.");
                    this.finish(Some("failed"));
                    return Poll::Ready(Some(Err(Box::new(Stalled))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Observed {
    fn drop(&mut self) {
        // Dropped before its end: the caller went away mid-answer.
        if self.pending.is_some() {
            let done = self.inner.is_end_stream();
            self.finish(if done { None } else { Some("aborted") });
        }
    }
}

/// A body read into memory up to a limit.
#[derive(Debug)]
pub enum Read<B> {
    /// All of it.
    Whole(Bytes),
    /// The first part; the rest is still in the body.
    Partial(Bytes, B),
}

/// Read `body` up to `limit` bytes, keeping what is left unread. Errors are the body's (the
/// caller, or Graph, broke off).
pub async fn read_up_to<B>(mut body: B, limit: usize) -> Result<Read<B>, B::Error>
where
    B: Body<Data = Bytes> + Unpin,
{
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame?;
        if let Ok(data) = frame.into_data() {
            buf.extend_from_slice(&data);
            if buf.len() > limit {
                return Ok(Read::Partial(buf.freeze(), body));
            }
        }
    }
    Ok(Read::Whole(buf.freeze()))
}

/// Replace every occurrence of each `(from, to)` in `bytes`, left to right; where several
/// `from`s start at the same place, the first of `pairs` wins. `None` when nothing was found.
///
/// Only the places where some `from` could start (its first byte) are compared, and those are
/// found with `memchr` (a word or vector at a time): answers read this way (every JSON answer
/// to a call made with a stored token) are often hundreds of kilobytes, and comparing every
/// pattern at every byte cost ~15 ns a byte. The patterns the proxy uses (a token in two
/// spellings, Graph's address in two) start with two different bytes.
pub fn replace_all(bytes: &[u8], pairs: &[(Vec<u8>, Vec<u8>)]) -> Option<Vec<u8>> {
    let pairs: Vec<(&[u8], &[u8])> = pairs
        .iter()
        .filter(|(from, _)| !from.is_empty())
        .map(|(from, to)| (from.as_slice(), to.as_slice()))
        .collect();
    let mut firsts: Vec<u8> = pairs
        .iter()
        .filter_map(|(from, _)| from.first().copied())
        .collect();
    firsts.sort_unstable();
    firsts.dedup();
    // Where the next place that may start a `from` is, at or after `at`.
    let candidate = |at: usize| -> Option<usize> {
        let rest = bytes.get(at..)?;
        match *firsts.as_slice() {
            [] => None,
            [a] => memchr::memchr(a, rest),
            [a, b] => memchr::memchr2(a, b, rest),
            [a, b, c] => memchr::memchr3(a, b, c, rest),
            _ => rest.iter().position(|x| firsts.contains(x)),
        }
        .map(|p| p + at)
    };
    let mut out: Option<Vec<u8>> = None;
    let (mut i, mut copied) = (0, 0);
    while let Some(at) = candidate(i) {
        match pairs.iter().find(|(from, _)| bytes[at..].starts_with(from)) {
            Some((from, to)) => {
                let o = out.get_or_insert_with(|| Vec::with_capacity(bytes.len()));
                o.extend_from_slice(&bytes[copied..at]);
                o.extend_from_slice(to);
                i = at + from.len();
                copied = i;
            }
            None => i = at + 1,
        }
    }
    if let Some(o) = out.as_mut() {
        o.extend_from_slice(&bytes[copied..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replacing_finds_every_occurrence_and_leaves_the_rest() {
        let pairs = vec![
            (b"SECRET".to_vec(), b"gwk_x".to_vec()),
            (b"http:\\/\\/up".to_vec(), b"http:\\/\\/me".to_vec()),
        ];
        let out = replace_all(
            br#"{"next":"http:\/\/up/v1/x?access_token=SECRET&after=1","t":"SECRETSECRET"}"#,
            &pairs,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"next":"http:\/\/me/v1/x?access_token=gwk_x&after=1","t":"gwk_xgwk_x"}"#
        );
        assert!(replace_all(b"nothing here", &pairs).is_none());
        assert!(replace_all(b"", &pairs).is_none());
    }

    /// The definition: at each byte, the first pattern that starts there.
    fn replace_all_bytewise(bytes: &[u8], pairs: &[(Vec<u8>, Vec<u8>)]) -> Option<Vec<u8>> {
        let mut out: Option<Vec<u8>> = None;
        let (mut i, mut copied) = (0, 0);
        while i < bytes.len() {
            match pairs
                .iter()
                .find(|(from, _)| !from.is_empty() && bytes[i..].starts_with(from))
            {
                Some((from, to)) => {
                    let o = out.get_or_insert_with(Vec::new);
                    o.extend_from_slice(&bytes[copied..i]);
                    o.extend_from_slice(to);
                    i += from.len();
                    copied = i;
                }
                None => i += 1,
            }
        }
        if let Some(o) = out.as_mut() {
            o.extend_from_slice(&bytes[copied..]);
        }
        out
    }

    #[test]
    fn replacing_agrees_with_a_byte_by_byte_scan() {
        // Small alphabets, so that patterns overlap, nest, repeat and share their starts.
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _ in 0..3000 {
            let word = |next: &mut dyn FnMut(u64) -> u64, len: u64| -> Vec<u8> {
                (0..len).map(|_| b"ab/\\hE"[next(6) as usize]).collect()
            };
            let pairs: Vec<(Vec<u8>, Vec<u8>)> = (0..1 + next(6))
                .map(|_| {
                    let from_len = next(4);
                    let to_len = next(3);
                    (word(&mut next, from_len), word(&mut next, to_len))
                })
                .collect();
            let body_len = next(40);
            let body = word(&mut next, body_len);
            assert_eq!(
                replace_all(&body, &pairs),
                replace_all_bytewise(&body, &pairs),
                "body {body:?}, pairs {pairs:?}"
            );
        }
        // A token in a large answer, found wherever it is.
        let token = b"EAAZx9Zx9".repeat(22);
        let mut big = b"{\"data\":[".to_vec();
        for i in 0..2000 {
            big.extend_from_slice(format!("{{\"id\":\"{i}\",\"name\":\"ad {i}\"}},").as_bytes());
        }
        big.extend_from_slice(
            b"],\"paging\":{\"next\":\"https:\\/\\/graph.facebook.com\\/v26.0\\/x?access_token=",
        );
        big.extend_from_slice(&token);
        big.extend_from_slice(b"\"}}");
        let pairs = vec![
            (token.clone(), b"gwk_placeholder".to_vec()),
            (
                b"https:\\/\\/graph.facebook.com".to_vec(),
                b"http:\\/\\/127.0.0.1:8080".to_vec(),
            ),
        ];
        let out = replace_all(&big, &pairs).unwrap();
        assert_eq!(Some(out.clone()), replace_all_bytewise(&big, &pairs));
        assert!(!out.windows(token.len()).any(|w| w == token.as_slice()));
        assert!(
            out.ends_with(
                b"http:\\/\\/127.0.0.1:8080\\/v26.0\\/x?access_token=gwk_placeholder\"}}"
            )
        );
    }
}
