//! Client connections that hold a worker without using it are closed: once a whole period
//! ([`PERIOD`], 30 s) passes in which no call started or ended on a connection and none is in
//! flight, it is dropped. That covers an idle keep-alive connection and a client sending its
//! request head too slowly (cut between one and two periods after its last call), and never
//! cuts a call that is running, however long Graph or the client takes.
//!
//! This replaces hyper's header-read time-out, which arms a timer for every request head and
//! drops it again, and polls the connection once more per call to do so: about 2,000
//! instructions per call, as much as all of graphwarden's own per-call work on the proxy's
//! threads. Here a call costs two counter updates, and a connection one timer per period.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

/// How long a connection may go without a call.
pub const PERIOD: Duration = Duration::from_secs(30);

/// Calls started and ended on one connection.
#[derive(Debug, Default)]
pub struct Activity {
    started: AtomicU64,
    ended: AtomicU64,
}

impl Activity {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// A call's head has arrived. The call ends when the body of the answer given to
    /// [`Call::answer`] ends, or when the call is dropped unanswered (the caller left).
    pub fn begin(self: &Arc<Self>) -> Call {
        self.started.fetch_add(1, Ordering::Relaxed);
        Call(Some(Arc::clone(self)))
    }

    fn counts(&self) -> (u64, u64) {
        (
            self.started.load(Ordering::Relaxed),
            self.ended.load(Ordering::Relaxed),
        )
    }

    /// Resolves once a whole `period` passed with no call started or ended and none in
    /// flight. Race it against the connection, and drop the connection when it wins.
    pub async fn unused_for(&self, period: Duration) {
        let mut before = self.counts();
        loop {
            tokio::time::sleep(period).await;
            let now = self.counts();
            if now == before && now.0 == now.1 {
                return;
            }
            before = now;
        }
    }
}

/// Serve `conn` (one client connection) in a task of its own, and drop it once `activity`
/// shows a whole [`PERIOD`] unused. The guard is a second task, woken only by its timer and by
/// the end of the connection: raced against the connection in the same task, it would be
/// polled (its timer checked, its waker compared) on every wake-up of the connection, several
/// per call.
pub fn spawn_guarded<F>(conn: F, activity: Arc<Activity>)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let task = tokio::spawn(conn);
    let abort = task.abort_handle();
    tokio::spawn(async move {
        tokio::select! {
            biased;
            _ = task => {}
            () = activity.unused_for(PERIOD) => {
                abort.abort();
                tracing::debug!("Closed a proxy connection unused for {PERIOD:?}.");
            }
        }
    });
}

/// A call in flight on a connection (see [`Activity::begin`]).
#[derive(Debug)]
pub struct Call(Option<Arc<Activity>>);

impl Call {
    /// The call's answer, whose body ends the call.
    pub fn answer<B>(mut self, response: http::Response<B>) -> http::Response<Tracked<B>> {
        let activity = self.0.take();
        response.map(|inner| Tracked { inner, activity })
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        if let Some(a) = self.0.take() {
            a.ended.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// An answer's body that counts its call as ended when it ends or is dropped.
#[derive(Debug)]
pub struct Tracked<B> {
    inner: B,
    activity: Option<Arc<Activity>>,
}

impl<B> Tracked<B> {
    fn end(&mut self) {
        if let Some(a) = self.activity.take() {
            a.ended.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl<B> Drop for Tracked<B> {
    fn drop(&mut self) {
        self.end();
    }
}

impl<B> Body for Tracked<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        let frame = std::task::ready!(Pin::new(&mut this.inner).poll_frame(cx));
        if !matches!(frame, Some(Ok(_))) {
            this.end();
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test(start_paused = true)]
    async fn a_connection_is_unused_only_after_a_quiet_period_with_nothing_in_flight() {
        let activity = Activity::new();
        let period = Duration::from_secs(30);
        let watch = tokio::spawn({
            let a = Arc::clone(&activity);
            async move { a.unused_for(period).await }
        });
        // A call in flight across two periods: not unused.
        let call = activity.begin();
        tokio::time::sleep(period + Duration::from_secs(1)).await;
        assert!(
            !watch.is_finished(),
            "a call waiting for Graph keeps the connection"
        );
        let answer = call.answer(http::Response::new(http_body_util::Full::new(
            Bytes::from_static(b"{}"),
        )));
        tokio::time::sleep(period * 2 + Duration::from_secs(1)).await;
        assert!(
            !watch.is_finished(),
            "a call in flight keeps the connection"
        );
        // It ends (its body is read to the end); one quiet period later, the connection is
        // unused.
        let body = answer.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"{}");
        tokio::time::sleep(period + Duration::from_secs(1)).await;
        assert!(!watch.is_finished(), "a call ended within the last period");
        tokio::time::sleep(period).await;
        assert!(
            watch.is_finished(),
            "a whole quiet period with nothing in flight"
        );

        // A dropped answer, or a call dropped before its answer (the caller left), ends its
        // call too.
        let a = Activity::new();
        drop(
            a.begin()
                .answer(http::Response::new(http_body_util::Empty::<Bytes>::new())),
        );
        assert_eq!(a.counts(), (1, 1));
        drop(a.begin());
        assert_eq!(a.counts(), (2, 2));
    }
}
