//! HTTP/1.1 to Graph, driven by the call itself: the request is written and the answer read
//! by the task that serves the caller, with no task per connection and no channels between
//! the two.
//!
//! hyper's client connection runs as a task of its own: a call hands its request over a
//! channel and wakes that task, which writes it, reads the answer, and hands the head back
//! over another channel and the body over a third, waking the caller's task for each. That
//! machinery cost about 14,000 instructions per call (`bench/proxy-instructions.sh`), half of
//! the whole HTTP stack. Here a call with its body in hand (every call but one streaming an
//! upload; those go through hyper's connection, see `upstream`) writes its head and body in
//! one write, reads the answer's head with `httparse` (as hyper does), and, when the whole
//! body came with the head (Graph's answers are small), has its connection back in the pool
//! before its answer leaves.
//!
//! Message framing follows RFC 9112 §6: no body for `HEAD`, 1xx, 204 and 304; chunked when
//! the last transfer coding is `chunked` (trailers read and dropped); else `Content-Length`
//! (several values must agree); else until the connection closes. A connection is reused only
//! when its answer was read exactly to its end, HTTP/1.1 without `Connection: close`. The
//! headers that are this connection's own (`Transfer-Encoding`, `Keep-Alive`, a `Connection`
//! holding only options) are left out of the answer as it is parsed; a `Connection` that
//! names other headers stays, for the proxy to strip those with it. The caller's `Host` (the
//! proxy's address) is replaced with Graph's.

use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Response, StatusCode, Version};
use http_body::{Body, Frame, SizeHint};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::body::BoxError;
use super::upstream::Pool;

/// A connection to Graph: plain TCP or TLS, as the pool's connector made it.
pub type Io = TokioIo<hyper_rustls::MaybeHttpsStream<TokioIo<tokio::net::TcpStream>>>;

/// The largest answer head read, and the most header lines in it (hyper's limits are of the
/// same order).
const MAX_HEAD: usize = 256 * 1024;
const MAX_HEADERS: usize = 128;
/// Room made in the read buffer before each read.
const READ_ROOM: usize = 16 * 1024;
/// The longest chunk-size or trailer line accepted.
const MAX_LINE: usize = 64 * 1024;

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A connection used before could not take the call (Graph closed it while it was
    /// idle): the call was not sent, and can go on a fresh connection.
    #[error("the kept-alive connection to Graph was closed")]
    Stale,
    #[error("the connection to Graph failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("Graph's answer is not valid HTTP/1.1: {0}")]
    Invalid(&'static str),
    #[error("Graph closed the connection before the end of its answer")]
    Cut,
}

/// One kept-alive HTTP/1.1 connection to Graph.
pub struct Conn {
    /// Boxed: a TLS stream is over a kilobyte, and a connection moves in and out of the pool
    /// on every call.
    io: Box<Io>,
    /// Bytes read and not yet used.
    buf: BytesMut,
    /// The request being written (kept for its allocation).
    out: Vec<u8>,
    /// Whether it carried a call before.
    reused: bool,
}

/// How the answer's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Empty,
    Length(u64),
    Chunked,
    Close,
}

/// What an exchange gives back: the answer's head, and its body (complete, or still to read
/// from the connection), and the connection when it is free again at once.
pub struct Exchanged {
    pub head: Response<()>,
    pub body: Delivered,
}

pub enum Delivered {
    /// The whole body came with the head; the connection, when reusable, is returned.
    Whole(Bytes, Option<Conn>),
    /// The body is still arriving on the connection.
    Streaming(Box<Streaming>),
}

impl Conn {
    pub fn new(io: Io) -> Self {
        Self {
            io: Box::new(io),
            buf: BytesMut::new(),
            out: Vec::new(),
            reused: false,
        }
    }

    /// Send a call (`target` in origin form) and read its answer's head.
    pub async fn exchange(
        mut self,
        method: &Method,
        target: &str,
        headers: &HeaderMap,
        host: Option<&HeaderValue>,
        body: &[u8],
    ) -> Result<Exchanged, Error> {
        let reused = self.reused;
        self.reused = true;
        self.write_request(method, target, headers, host, body);
        let sent = self.io.write_all(&self.out).await;
        let sent = match sent {
            Ok(()) => self.io.flush().await,
            Err(e) => Err(e),
        };
        if let Err(e) = sent {
            // Refused as it was written: Graph had closed the connection, and saw nothing.
            return Err(if reused && resets(&e) {
                Error::Stale
            } else {
                Error::Io(e)
            });
        }
        if self.out.capacity() > READ_ROOM {
            self.out = Vec::new(); // an upload's buffer is not kept
        }
        loop {
            let data = self.read_head().await?;
            match parse_head(&data, *method == Method::HEAD)? {
                None => {
                    // Not all of the head yet (rare: a head split across reads).
                    if data.len() > MAX_HEAD {
                        return Err(Error::Invalid("the answer's head is too large"));
                    }
                    self.buf.extend_from_slice(&data);
                    self.read_more().await?;
                }
                Some(Head::Interim(len)) => {
                    // 100 Continue, 103 Early Hints: the answer follows.
                    self.buf.extend_from_slice(&data[len..]);
                }
                Some(Head::Final(len, head, framing, keep_alive)) => {
                    let rest = data.slice(len..);
                    return Ok(self.deliver(head, framing, keep_alive, rest));
                }
            }
        }
    }

    fn write_request(
        &mut self,
        method: &Method,
        target: &str,
        headers: &HeaderMap,
        host: Option<&HeaderValue>,
        body: &[u8],
    ) {
        let out = &mut self.out;
        out.clear();
        out.reserve(256 + body.len());
        out.extend_from_slice(method.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(target.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        let mut has_host = false;
        for (name, value) in headers {
            // Framing is this connection's own; the body is sent at once.
            if name == header::CONTENT_LENGTH
                || name == header::TRANSFER_ENCODING
                || name == header::EXPECT
            {
                continue;
            }
            if name == header::HOST {
                if host.is_some() {
                    continue; // the caller's (the proxy's own address): Graph's goes instead
                }
                has_host = true;
            }
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        if !has_host && let Some(host) = host {
            out.extend_from_slice(b"host: ");
            out.extend_from_slice(host.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        let payload = !matches!(
            *method,
            Method::GET | Method::HEAD | Method::DELETE | Method::OPTIONS | Method::TRACE
        );
        if !body.is_empty() || payload {
            out.extend_from_slice(b"content-length: ");
            push_decimal(out, body.len() as u64);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body);
    }

    /// Everything read so far (at least one read's worth): the head is parsed from it.
    async fn read_head(&mut self) -> Result<Bytes, Error> {
        if self.buf.is_empty() {
            self.read_more().await?;
        }
        Ok(self.buf.split().freeze())
    }

    /// Read once more into the buffer: an answer's head is still to come. (A call sent is
    /// never sent again from here: once written, Graph may have acted on it.)
    async fn read_more(&mut self) -> Result<(), Error> {
        self.buf.reserve(READ_ROOM);
        match self.io.read_buf(&mut self.buf).await {
            Ok(0) => Err(Error::Cut),
            Ok(_) => Ok(()),
            Err(e) => Err(Error::Io(e)),
        }
    }

    /// Whether an idle connection is still open, without waiting: Graph closing it while it
    /// sat in the pool made it readable (an end, or a TLS alert), and nothing else may arrive
    /// on an idle connection. No system call unless the socket became readable: the runtime
    /// knows it has nothing to read.
    pub fn still_open(&mut self) -> bool {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut byte = [0u8; 1];
        let mut probe = tokio::io::ReadBuf::new(&mut byte);
        matches!(
            tokio::io::AsyncRead::poll_read(Pin::new(&mut *self.io), &mut cx, &mut probe),
            Poll::Pending
        )
    }

    fn deliver(
        mut self,
        head: Response<()>,
        framing: Framing,
        keep_alive: bool,
        rest: Bytes,
    ) -> Exchanged {
        let body = match framing {
            Framing::Empty => {
                let conn = (keep_alive && rest.is_empty()).then_some(self);
                Delivered::Whole(Bytes::new(), conn)
            }
            Framing::Length(n) if rest.len() as u64 >= n => {
                let exact = rest.len() as u64 == n;
                let conn = (keep_alive && exact).then_some(self);
                Delivered::Whole(rest.slice(..n as usize), conn)
            }
            _ => {
                self.buf.extend_from_slice(&rest);
                let state = match framing {
                    Framing::Length(n) => State::Data {
                        left: n,
                        chunked: false,
                    },
                    Framing::Chunked => State::Size,
                    _ => State::UntilClose,
                };
                Delivered::Streaming(Box::new(Streaming {
                    conn: Some(self),
                    state,
                    keep_alive,
                    pool: None,
                    hint: match framing {
                        Framing::Length(n) => SizeHint::with_exact(n),
                        _ => SizeHint::default(),
                    },
                }))
            }
        };
        Exchanged { head, body }
    }

    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        self.buf.reserve(READ_ROOM);
        tokio_util::io::poll_read_buf(Pin::new(&mut *self.io), cx, &mut self.buf)
    }
}

fn resets(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        e.kind(),
        K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof
    )
}

/// `n` in decimal.
fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

enum Head {
    /// A 1xx answer of `len` bytes; the final one follows.
    Interim(usize),
    /// The answer's head (`len` bytes), its framing and whether the connection stays open.
    Final(usize, Response<()>, Framing, bool),
}

/// A header value as read, sharing the read buffer (checked as `HeaderValue` requires).
fn shared_value(raw: &[u8], data: &Bytes) -> Result<HeaderValue, Error> {
    HeaderValue::from_maybe_shared(data.slice_ref(raw))
        .map_err(|_| Error::Invalid("a header value"))
}

/// The most distinct header lines remembered per thread, and the longest value kept.
const SEEN_LINES: usize = 64;
const SEEN_VALUE: usize = 512;

thread_local! {
    /// The header lines of the answers lately read on this thread, parsed. Graph's answers
    /// repeat most of their lines (content type, caching, CORS, version, often the usage
    /// headers), in the same order: a line seen before is a comparison of its bytes and a
    /// shared copy, instead of checking the name and value byte by byte and allocating a
    /// custom name. Each worker has its thread.
    static SEEN: std::cell::RefCell<Seen> = const { std::cell::RefCell::new(Seen { lines: Vec::new() }) };
}

struct Seen {
    lines: Vec<SeenLine>,
}

struct SeenLine {
    /// The name as it came (case kept): compared as bytes.
    raw: Box<[u8]>,
    name: HeaderName,
    /// The value last kept (an owned copy: it holds no read buffer).
    value: Option<HeaderValue>,
    /// Answers in a row whose value differed; a value that changes on every answer (a
    /// trace id, the date) is copied only now and then.
    misses: u8,
}

impl Seen {
    /// The line named `raw`, looked for at the position it holds in this answer first.
    fn find(&mut self, at: usize, raw: &[u8]) -> Option<&mut SeenLine> {
        let i = match self.lines.get(at) {
            Some(l) if *l.raw == *raw => at,
            _ => self.lines.iter().position(|l| *l.raw == *raw)?,
        };
        self.lines.get_mut(i)
    }

    /// Remember a name not seen before (all of them forgotten when too many were seen).
    fn learn(&mut self, raw: &[u8], name: HeaderName) -> &mut SeenLine {
        if self.lines.len() >= SEEN_LINES {
            self.lines.clear();
        }
        let at = self.lines.len();
        self.lines.push(SeenLine {
            raw: raw.into(),
            name,
            value: None,
            misses: 0,
        });
        &mut self.lines[at]
    }
}

impl SeenLine {
    fn value(&mut self, raw: &[u8], data: &Bytes) -> Result<HeaderValue, Error> {
        if let Some(v) = &self.value
            && v.as_bytes() == raw
        {
            self.misses = 0;
            return Ok(v.clone());
        }
        let fresh = shared_value(raw, data)?;
        self.misses = self.misses.wrapping_add(1);
        if self.misses <= 2 && raw.len() <= SEEN_VALUE {
            self.value = HeaderValue::from_bytes(raw).ok();
        }
        Ok(fresh)
    }
}

/// Parse an answer's head at the start of `data`; `None` while it is incomplete.
fn parse_head(data: &Bytes, to_head: bool) -> Result<Option<Head>, Error> {
    let mut lines = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut parsed,
        data,
        &mut lines,
    ) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Error::Invalid("the head has too many header lines"));
        }
        Err(_) => return Err(Error::Invalid("the head cannot be parsed")),
    };
    let code = parsed.code.unwrap_or(0);
    let status = StatusCode::from_u16(code).map_err(|_| Error::Invalid("the status"))?;
    if status == StatusCode::SWITCHING_PROTOCOLS {
        return Err(Error::Invalid("an upgrade nobody asked for"));
    }
    if status.is_informational() {
        return Ok(Some(Head::Interim(len)));
    }
    let version = match parsed.version {
        Some(1) => Version::HTTP_11,
        _ => Version::HTTP_10,
    };
    let mut map = HeaderMap::with_capacity(parsed.headers.len());
    let mut length: Option<u64> = None;
    let mut chunked = None;
    let (mut close, mut keep) = (false, false);
    SEEN.with_borrow_mut(|seen| -> Result<(), Error> {
        for (at, line) in parsed.headers.iter().enumerate() {
            // (Connection and framing lines are remembered too, though never passed on: a
            // name not remembered is looked for in every line remembered.)
            let known = match seen.find(at, line.name.as_bytes()) {
                Some(l) => l,
                None => {
                    let name = HeaderName::from_bytes(line.name.as_bytes())
                        .map_err(|_| Error::Invalid("a header name"))?;
                    seen.learn(line.name.as_bytes(), name)
                }
            };
            let name = known.name.clone();
            if name == header::CONTENT_LENGTH {
                for part in line.value.split(|&b| b == b',') {
                    let n = decimal(part.trim_ascii()).ok_or(Error::Invalid("Content-Length"))?;
                    if length.is_some_and(|l| l != n) {
                        return Err(Error::Invalid("Content-Length values that disagree"));
                    }
                    length = Some(n);
                }
            } else if name == header::TRANSFER_ENCODING {
                // Only the last coding counts; an earlier header's last one is not last.
                chunked = line
                    .value
                    .split(|&b| b == b',')
                    .map(<[u8]>::trim_ascii)
                    .rfind(|c| !c.is_empty())
                    .map(|c| c.eq_ignore_ascii_case(b"chunked"));
                // This connection's framing, undone here: not part of the answer passed on.
                continue;
            } else if name == header::CONNECTION {
                let mut names_headers = false;
                for option in line.value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                    let c = option.eq_ignore_ascii_case(b"close");
                    let k = option.eq_ignore_ascii_case(b"keep-alive");
                    close |= c;
                    keep |= k;
                    names_headers |= !(c || k || option.is_empty());
                }
                // Options of this connection only (the usual `keep-alive`): not passed on.
                // One that names headers stays, for the proxy to take those out with it.
                if !names_headers {
                    continue;
                }
            } else if line.name.eq_ignore_ascii_case("keep-alive") {
                continue; // this connection's parameters
            }
            let value = known.value(line.value, data)?;
            map.append(name, value);
        }
        Ok(())
    })?;
    let framing =
        if to_head || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
            Framing::Empty
        } else if let Some(chunked) = chunked {
            if chunked {
                Framing::Chunked
            } else {
                Framing::Close
            }
        } else {
            match length {
                Some(n) => Framing::Length(n),
                None => Framing::Close,
            }
        };
    let keep_alive = framing != Framing::Close && !close && (version == Version::HTTP_11 || keep);
    let mut head = Response::new(());
    *head.status_mut() = status;
    *head.version_mut() = version;
    *head.headers_mut() = map;
    Ok(Some(Head::Final(len, head, framing, keep_alive)))
}

fn decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        digits
            .iter()
            .fold(0u64, |n, d| n * 10 + u64::from(d - b'0')),
    )
}

/// Where a streamed body is.
#[derive(Debug, Clone, Copy)]
enum State {
    /// Body bytes (of the whole body, or of a chunk) still to come.
    Data {
        left: u64,
        chunked: bool,
    },
    /// The CRLF after a chunk's data.
    ChunkEnd,
    /// A chunk-size line.
    Size,
    /// Trailer lines, up to the empty line.
    Trailers,
    /// Everything until the connection closes.
    UntilClose,
    Done,
}

/// An answer's body still arriving on its connection. Read to its end, the connection goes
/// back to the pool (when it may be reused); dropped before, the connection is closed.
pub struct Streaming {
    conn: Option<Conn>,
    state: State,
    keep_alive: bool,
    pool: Option<Arc<Pool>>,
    hint: SizeHint,
}

impl Streaming {
    /// Where the connection goes back when the body has been read.
    pub fn returns_to(&mut self, pool: Arc<Pool>) {
        self.pool = Some(pool);
    }

    fn done(&mut self) {
        self.state = State::Done;
        if let Some(conn) = self.conn.take()
            && self.keep_alive
            && conn.buf.is_empty()
            && let Some(pool) = self.pool.take()
        {
            pool.put_back_conn(conn, graphwarden_core::Stopwatch::start());
        }
    }

    /// Take the line at the start of the buffer (without its CRLF), if one is complete.
    fn line(buf: &mut BytesMut) -> Result<Option<BytesMut>, Error> {
        match buf.iter().position(|&b| b == b'\n') {
            Some(end) => {
                let mut line = buf.split_to(end + 1);
                line.truncate(end);
                if line.last() == Some(&b'\r') {
                    line.truncate(end - 1);
                }
                Ok(Some(line))
            }
            None if buf.len() > MAX_LINE => Err(Error::Invalid("a chunk line is too long")),
            None => Ok(None),
        }
    }
}

/// What a look at the buffer says to do.
enum Step {
    Again,
    Read,
    Yield(Bytes),
    /// The body's last bytes: the connection is free.
    YieldLast(Bytes),
    Finish,
    Fail(Error),
}

impl Body for Streaming {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            let buf = &mut conn.buf;
            let step = match this.state {
                State::Done => return Poll::Ready(None),
                State::Data { left: 0, chunked } => {
                    if chunked {
                        this.state = State::ChunkEnd;
                        Step::Again
                    } else {
                        Step::Finish
                    }
                }
                State::Data { left, chunked } if !buf.is_empty() => {
                    let take = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                    let data = buf.split_to(take).freeze();
                    let left = left - take as u64;
                    this.state = State::Data { left, chunked };
                    if left == 0 && !chunked {
                        Step::YieldLast(data)
                    } else {
                        Step::Yield(data)
                    }
                }
                State::ChunkEnd if buf.len() >= 2 => {
                    if &buf[..2] == b"\r\n" {
                        buf.advance(2);
                        this.state = State::Size;
                        Step::Again
                    } else {
                        Step::Fail(Error::Invalid("no CRLF after a chunk"))
                    }
                }
                State::Size => match httparse::parse_chunk_size(buf) {
                    Ok(httparse::Status::Complete((used, size))) => {
                        buf.advance(used);
                        this.state = if size == 0 {
                            State::Trailers
                        } else {
                            State::Data {
                                left: size,
                                chunked: true,
                            }
                        };
                        Step::Again
                    }
                    Ok(httparse::Status::Partial) if buf.len() <= MAX_LINE => Step::Read,
                    _ => Step::Fail(Error::Invalid("a chunk size")),
                },
                State::Trailers => match Self::line(buf) {
                    Ok(Some(line)) if line.is_empty() => Step::Finish,
                    Ok(Some(_)) => Step::Again, // a trailer: dropped
                    Ok(None) => Step::Read,
                    Err(e) => Step::Fail(e),
                },
                State::UntilClose if !buf.is_empty() => Step::Yield(buf.split().freeze()),
                _ => Step::Read,
            };
            match step {
                Step::Again => continue,
                Step::Read => {}
                Step::Yield(data) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                Step::YieldLast(data) => {
                    this.done();
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Step::Finish => {
                    this.done();
                    return Poll::Ready(None);
                }
                Step::Fail(e) => {
                    this.conn = None;
                    this.state = State::Done;
                    return Poll::Ready(Some(Err(Box::new(e))));
                }
            }
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            let read = ready!(conn.poll_fill(cx));
            match read {
                Ok(0) if matches!(this.state, State::UntilClose) => {
                    this.conn = None; // read to its close: never reused
                    this.state = State::Done;
                    return Poll::Ready(None);
                }
                Ok(0) => {
                    this.conn = None;
                    this.state = State::Done;
                    return Poll::Ready(Some(Err(Box::new(Error::Cut))));
                }
                Ok(_) => {}
                Err(e) => {
                    this.conn = None;
                    this.state = State::Done;
                    return Poll::Ready(Some(Err(Box::new(Error::Io(e)))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, State::Done)
    }

    fn size_hint(&self) -> SizeHint {
        self.hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str, to_head: bool) -> Result<(Response<()>, Framing, bool, usize), Error> {
        let data = Bytes::copy_from_slice(text.as_bytes());
        match parse_head(&data, to_head)? {
            Some(Head::Final(len, head, framing, keep)) => Ok((head, framing, keep, len)),
            _ => panic!("not a final head"),
        }
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let (h, f, keep, _) = head(
            "HTTP/1.1 200 OK\r\nContent-Length: 12\r\nX-App-Usage: {\"call_count\":1}\r\n\r\n",
            false,
        )
        .unwrap();
        assert_eq!(f, Framing::Length(12));
        assert!(keep);
        assert_eq!(h.headers()["x-app-usage"], "{\"call_count\":1}");
        // This connection's own headers are not part of the answer; a Connection header that
        // names others stays, for the proxy to strip those with it.
        let (h, _, keep, _) = head(
            "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\ntransfer-encoding: chunked\r\nx-a: 1\r\n\r\n",
            false,
        )
        .unwrap();
        assert!(keep);
        assert_eq!(h.headers().len(), 1, "{:?}", h.headers());
        let (h, _, _, _) = head(
            "HTTP/1.1 200 OK\r\nConnection: x-a, keep-alive\r\nx-a: 1\r\ncontent-length: 0\r\n\r\n",
            false,
        )
        .unwrap();
        assert_eq!(h.headers()["connection"], "x-a, keep-alive");
        // Transfer-Encoding wins over Content-Length.
        let (_, f, _, _) = head(
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\ntransfer-encoding: gzip, chunked\r\n\r\n",
            false,
        )
        .unwrap();
        assert_eq!(f, Framing::Chunked);
        let (_, f, keep, _) =
            head("HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n", false).unwrap();
        assert_eq!((f, keep), (Framing::Close, false));
        // No length: until close, not reused.
        let (_, f, keep, _) = head("HTTP/1.1 200 OK\r\n\r\n", false).unwrap();
        assert_eq!((f, keep), (Framing::Close, false));
        // No body, whatever the length says.
        for (text, to_head) in [
            ("HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n", true),
            ("HTTP/1.1 204 No Content\r\n\r\n", false),
            (
                "HTTP/1.1 304 Not Modified\r\ncontent-length: 10\r\n\r\n",
                false,
            ),
        ] {
            assert_eq!(head(text, to_head).unwrap().1, Framing::Empty, "{text}");
        }
        // Closing.
        let (_, _, keep, _) = head(
            "HTTP/1.1 200 OK\r\nconnection: Close\r\ncontent-length: 0\r\n\r\n",
            false,
        )
        .unwrap();
        assert!(!keep);
        let (_, _, keep, _) = head("HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n", false).unwrap();
        assert!(!keep);
        let (_, _, keep, _) = head(
            "HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 0\r\n\r\n",
            false,
        )
        .unwrap();
        assert!(keep);
        // Lengths that agree, and those that do not.
        assert_eq!(
            head(
                "HTTP/1.1 200 OK\r\ncontent-length: 3, 3\r\ncontent-length: 3\r\n\r\n",
                false
            )
            .unwrap()
            .1,
            Framing::Length(3)
        );
        for bad in [
            "HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 99999999999999999999\r\n\r\n",
            "HTTP/1.1 101 Switching Protocols\r\n\r\n",
            "HTTP/1.1 200 OK\r\nbad name: x\r\n\r\n",
            "garbage\r\n\r\n",
        ] {
            assert!(head(bad, false).is_err(), "{bad}");
        }
        let data = Bytes::from_static(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n");
        assert!(matches!(
            parse_head(&data, false),
            Ok(Some(Head::Interim(25)))
        ));
        let data = Bytes::from_static(b"HTTP/1.1 200 OK\r\ncontent-le");
        assert!(matches!(parse_head(&data, false), Ok(None)));
    }

    #[test]
    fn lines_seen_before_read_as_they_came_whatever_changed() {
        let text = |trace: &str, usage: &str, order: bool| {
            let (a, b) = (
                format!("X-FB-Trace-Id: {trace}\r\n"),
                format!("x-app-usage: {usage}\r\n"),
            );
            let (first, second) = if order { (a, b) } else { (b, a) };
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{first}{second}Content-Length: 0\r\n\r\n"
            )
        };
        // Values that repeat, values that change on every answer (past the few copies kept),
        // lines in another order, a name first seen late.
        for i in 0..300 {
            let trace = format!("trace-{i}");
            let usage = if i % 7 == 0 {
                "{\"call_count\":2}"
            } else {
                "{\"call_count\":1}"
            };
            let (h, f, ..) = head(&text(&trace, usage, i % 3 != 0), false).unwrap();
            assert_eq!(f, Framing::Length(0));
            let names: Vec<&str> = h.headers().keys().map(HeaderName::as_str).collect();
            assert_eq!(names.len(), 4, "{names:?}");
            assert_eq!(h.headers()["content-type"], "application/json");
            assert_eq!(h.headers()["x-fb-trace-id"], trace.as_str());
            assert_eq!(h.headers()["x-app-usage"], usage);
            assert_eq!(h.headers()["content-length"], "0");
        }
        // What the thread remembers: a value that repeated is kept (and taken as it was), one
        // that changed on every answer is no longer copied after its first misses.
        SEEN.with_borrow(|s| {
            let line = |raw: &[u8]| s.lines.iter().find(|l| *l.raw == *raw).unwrap();
            let ct = line(b"Content-Type");
            assert_eq!(ct.misses, 0);
            assert_eq!(ct.value.as_ref().unwrap(), "application/json");
            let trace = line(b"X-FB-Trace-Id");
            assert!(trace.misses > 2);
            // (Copied while its count of misses, a byte, is at most 2: at the first answers,
            // then at answers 255 to 257 as the count wraps.)
            assert_eq!(trace.value.as_ref().unwrap(), "trace-257");
        });
        // A bad value is refused though its name is remembered, the first time and again.
        assert!(head(&text("bad\u{7f}", "1", true), false).is_err());
        assert!(head(&text("bad\u{7f}", "1", true), false).is_err());
        // More distinct names than are remembered: all still read.
        for i in 0..(2 * SEEN_LINES) {
            let (h, ..) = head(&format!("HTTP/1.1 200 OK\r\nx-n{i}: v{i}\r\n\r\n"), false).unwrap();
            assert_eq!(
                h.headers()[format!("x-n{i}").as_str()],
                format!("v{i}").as_str()
            );
        }
        SEEN.with_borrow(|s| assert!(s.lines.len() <= SEEN_LINES));
    }

    #[test]
    fn decimals_are_written_as_decimals() {
        for n in [0u64, 7, 10, 1234, u64::MAX] {
            let mut out = Vec::new();
            push_decimal(&mut out, n);
            assert_eq!(out, n.to_string().into_bytes());
        }
    }
}
