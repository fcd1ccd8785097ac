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

/// Replace every occurrence of each `(from, to)` in `bytes`.
pub fn replace_all(bytes: &[u8], pairs: &[(Vec<u8>, Vec<u8>)]) -> Option<Vec<u8>> {
    let pairs: Vec<&(Vec<u8>, Vec<u8>)> = pairs.iter().filter(|(f, _)| !f.is_empty()).collect();
    let mut out: Option<Vec<u8>> = None;
    let mut i = 0;
    let mut copied = 0;
    while i < bytes.len() {
        let hit = pairs.iter().find(|(from, _)| bytes[i..].starts_with(from));
        if let Some((from, to)) = hit {
            let o = out.get_or_insert_with(|| Vec::with_capacity(bytes.len()));
            o.extend_from_slice(&bytes[copied..i]);
            o.extend_from_slice(to);
            i += from.len();
            copied = i;
        } else {
            i += 1;
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
}
