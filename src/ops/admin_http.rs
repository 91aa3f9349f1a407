//! Just enough HTTP/1.1 for the admin endpoint: read one request, write one response, close.
//!
//! The admin endpoint serves `GET /metrics`, `GET /healthz` and `POST /drain` to curl,
//! Prometheus and systemd. Those clients send small, well-formed requests, so this module
//! reads at most [`MAX_HEAD_BYTES`] of request head, accepts only a tiny body, answers every
//! request with `Connection: close`, and turns anything else into a clean `4xx` response:
//! the admin port may face a confused client or a port scanner, and neither may disturb the
//! relay. Nothing here panics on input; the tests feed it random bytes to check that.
//!
//! What is left out on purpose: keep-alive, chunked bodies (answered with 501), percent
//! decoding of paths (handlers compare paths literally), and `Expect: 100-continue`
//! (curl only sends it for bodies over 1 KiB, which are refused anyway).
//!
//! [`read_request`] works on any `Read` and [`answer`] on any `Read` and `Write`, so the
//! tests (and the fuzz loops at the end of this file) drive them with byte slices;
//! [`respond_to_one`] and [`linger_close`] use them on one accepted [`Stream`] (TCP or Unix)
//! with a deadline.
//! The accept loop, and who may do what, belong to the admin endpoint (`admin.rs`).

use std::fmt;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::time::{Duration, Instant};

use crate::net::stream::Stream;

/// The most bytes of request line and headers read before answering 414 or 431.
/// curl's and Prometheus' requests are a few hundred bytes.
pub const MAX_HEAD_BYTES: usize = 8 * 1024;

/// The longest request target (path and query) accepted before answering 414.
pub const MAX_TARGET_BYTES: usize = 1024;

/// The largest request body read (and ignored) before answering 413. The admin endpoint takes
/// no input, but `curl -d ''` and some tools send a short body with `POST`.
pub const MAX_BODY_BYTES: u64 = 1024;

/// The most time one response may take to write, however big it is and however slowly the
/// client reads it: then its handler is free again. A `/metrics` of thousands of upstreams is
/// megabytes; Prometheus gives up on a scrape after 10 s (`scrape_timeout`) anyway.
const ANSWER_DEADLINE: Duration = Duration::from_secs(10);

/// How long, after the response, [`linger_close`] keeps reading what the client still
/// sends, and how much of it at most. See there for why.
const LINGER_TIME: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 64 * 1024;

/// Where another thread's `shutdown` does not wake a blocked `recv` (Windows: see
/// src/relay/timers.rs, `CLOSE_CHECK`), reads wait at most this long at a time, and a read
/// begun after the shutdown fails at once. The admin endpoint shuts down its oldest slow
/// client to make room for a new one and waits `THREAD_EXIT_WAIT` (100 ms) for its thread
/// to leave, so this must be well below that. Costs on Windows: 50 wake-ups a second per
/// admin client still sending its request (at most 16, for at most `REQUEST_TIMEOUT`).
const SHUTDOWN_CHECK: Option<Duration> =
    if cfg!(windows) { Some(Duration::from_millis(20)) } else { None };

/// The response statuses the admin endpoint uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// 200: the request was served.
    Ok,
    /// 400: the request is not valid HTTP/1.x.
    BadRequest,
    /// 401: the request needs `Authorization: Bearer TOKEN`; send a `WWW-Authenticate`
    /// header with it.
    Unauthorized,
    /// 403: the request is understood but refused (a cross-site or rebound request).
    Forbidden,
    /// 404: no such path.
    NotFound,
    /// 405: the path exists but not for this method; send an `Allow` header with it.
    MethodNotAllowed,
    /// 408: the request head did not arrive before the deadline.
    RequestTimeout,
    /// 409: the request conflicts with the relay's state (a reload that was refused).
    Conflict,
    /// 413: the body is larger than [`MAX_BODY_BYTES`].
    ContentTooLarge,
    /// 414: the request line or target is too long.
    UriTooLong,
    /// 431: the request head is larger than [`MAX_HEAD_BYTES`].
    HeaderFieldsTooLarge,
    /// 501: the request uses a feature this server does not implement (chunked bodies).
    NotImplemented,
    /// 503: the relay cannot serve this now (for example, already draining).
    ServiceUnavailable,
    /// 505: an HTTP version other than 1.0 or 1.1.
    HttpVersionNotSupported,
}

impl Status {
    /// The three-digit status code, e.g. `404`.
    pub fn code(self) -> u16 {
        match self {
            Status::Ok => 200,
            Status::BadRequest => 400,
            Status::Unauthorized => 401,
            Status::Forbidden => 403,
            Status::NotFound => 404,
            Status::MethodNotAllowed => 405,
            Status::RequestTimeout => 408,
            Status::Conflict => 409,
            Status::ContentTooLarge => 413,
            Status::UriTooLong => 414,
            Status::HeaderFieldsTooLarge => 431,
            Status::NotImplemented => 501,
            Status::ServiceUnavailable => 503,
            Status::HttpVersionNotSupported => 505,
        }
    }

    /// The reason phrase from RFC 9110 and RFC 6585, e.g. `Not Found`.
    pub fn reason(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::BadRequest => "Bad Request",
            Status::Unauthorized => "Unauthorized",
            Status::Forbidden => "Forbidden",
            Status::NotFound => "Not Found",
            Status::MethodNotAllowed => "Method Not Allowed",
            Status::RequestTimeout => "Request Timeout",
            Status::Conflict => "Conflict",
            Status::ContentTooLarge => "Content Too Large",
            Status::UriTooLong => "URI Too Long",
            Status::HeaderFieldsTooLarge => "Request Header Fields Too Large",
            Status::NotImplemented => "Not Implemented",
            Status::ServiceUnavailable => "Service Unavailable",
            Status::HttpVersionNotSupported => "HTTP Version Not Supported",
        }
    }
}

/// The parts of a request the admin endpoint routes on and decides access by.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Request {
    /// The method exactly as sent, e.g. `GET` (methods are case-sensitive).
    pub method: String,
    /// The path without the query string, e.g. `/metrics`, not percent-decoded.
    pub path: String,
    /// The `Host` header's value (trimmed), e.g. `127.0.0.1:9090`; `None` only for an
    /// HTTP/1.0 request without one.
    pub host: Option<String>,
    /// The `Origin` header's value, which browsers add to cross-site and `POST` requests.
    pub origin: Option<String>,
    /// The `Authorization` header's value, e.g. `Bearer 3f9a...`. Secret: `Debug` hides it.
    pub authorization: Option<String>,
}

#[cfg(test)]
impl Request {
    /// A request with this method and path and no headers, for tests.
    pub fn new(method: &str, path: &str) -> Request {
        Request { method: method.to_string(), path: path.to_string(), ..Request::default() }
    }
}

impl fmt::Debug for Request {
    /// Like a derived `Debug`, but the `Authorization` value is never printed: requests may
    /// end up in debug logs, and the token must not.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("host", &self.host)
            .field("origin", &self.origin)
            .field("authorization", &self.authorization.as_ref().map(|_| "<hidden>"))
            .finish()
    }
}

/// Why no valid request could be read.
#[derive(Debug)]
pub enum RequestError {
    /// The client closed the connection without sending a byte (a port probe). There is
    /// nobody to answer.
    Empty,
    /// The request did not arrive in full before the deadline.
    Timeout,
    /// The bytes are not a valid HTTP/1.x request; the text says what was wrong.
    Malformed(&'static str),
    /// The request line is longer than [`MAX_HEAD_BYTES`], or its target longer than
    /// [`MAX_TARGET_BYTES`].
    TargetTooLong,
    /// The request head is longer than [`MAX_HEAD_BYTES`].
    HeadTooLarge,
    /// The body announced by `Content-Length` is larger than [`MAX_BODY_BYTES`].
    BodyTooLarge,
    /// The request uses `Transfer-Encoding`, which this server does not implement.
    TransferEncoding,
    /// The request line names an HTTP version other than 1.0 or 1.1.
    UnsupportedVersion,
    /// Reading from the connection failed (for example, it was reset). No answer is possible.
    Io(io::Error),
}

impl RequestError {
    /// The status to answer with, or `None` when the client cannot be answered.
    pub fn status(&self) -> Option<Status> {
        match self {
            RequestError::Empty | RequestError::Io(_) => None,
            RequestError::Timeout => Some(Status::RequestTimeout),
            RequestError::Malformed(_) => Some(Status::BadRequest),
            RequestError::TargetTooLong => Some(Status::UriTooLong),
            RequestError::HeadTooLarge => Some(Status::HeaderFieldsTooLarge),
            RequestError::BodyTooLarge => Some(Status::ContentTooLarge),
            RequestError::TransferEncoding => Some(Status::NotImplemented),
            RequestError::UnsupportedVersion => Some(Status::HttpVersionNotSupported),
        }
    }
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::Empty => f.write_str("the client closed without sending a request"),
            RequestError::Timeout => f.write_str("the request did not arrive in time"),
            RequestError::Malformed(what) => write!(f, "malformed request: {what}"),
            RequestError::TargetTooLong => write!(
                f,
                "the request line or target is too long (at most {MAX_TARGET_BYTES} bytes of target)"
            ),
            RequestError::HeadTooLarge => {
                write!(f, "the request head is larger than {MAX_HEAD_BYTES} bytes")
            }
            RequestError::BodyTooLarge => {
                write!(f, "the request body is larger than {MAX_BODY_BYTES} bytes")
            }
            RequestError::TransferEncoding => {
                f.write_str("Transfer-Encoding is not supported; send Content-Length")
            }
            RequestError::UnsupportedVersion => {
                f.write_str("only HTTP/1.0 and HTTP/1.1 are supported")
            }
            RequestError::Io(error) => write!(f, "reading the request failed: {error}"),
        }
    }
}

impl std::error::Error for RequestError {}

/// Reads one request (head, then any short body) from `reader`.
///
/// Reads at most [`MAX_HEAD_BYTES`] bytes of head plus at most [`MAX_BODY_BYTES`] of body,
/// so a client cannot make the server hold more. A read that fails with `WouldBlock` or
/// `TimedOut` (what a socket read timeout looks like on Unix and on Windows) ends the
/// request with [`RequestError::Timeout`].
///
/// # Errors
/// See [`RequestError`]; each variant except `Empty` and `Io` maps to a 4xx or 5xx status.
pub fn read_request<R: Read>(reader: &mut R) -> Result<Request, RequestError> {
    let mut buffer = Vec::with_capacity(1024);
    let head_len = read_head(reader, &mut buffer)?;
    let head = std::str::from_utf8(&buffer[..head_len])
        .map_err(|_| RequestError::Malformed("the request head is not UTF-8"))?;
    let parsed = parse_head(head)?;

    // The body is read and thrown away so that closing the connection does not reset it
    // while the client is still sending (see `linger_close`).
    let already_read = u64::try_from(buffer.len() - head_len).unwrap_or(u64::MAX);
    let still_to_read = parsed.content_length.saturating_sub(already_read);
    discard_exactly(reader, still_to_read)?;
    Ok(parsed.request)
}

/// Reads into `buffer` until it holds a complete head; returns the head's length, including
/// the blank line that ends it. Bytes after the head (the start of a body) stay in `buffer`.
fn read_head<R: Read>(reader: &mut R, buffer: &mut Vec<u8>) -> Result<usize, RequestError> {
    let mut chunk = [0u8; 1024];
    let mut searched = 0;
    loop {
        if let Some(end) = find_head_end(buffer, searched) {
            return Ok(end);
        }
        // Resume the search a few bytes back: the blank line may straddle two reads.
        searched = buffer.len().saturating_sub(3);
        let room = MAX_HEAD_BYTES - buffer.len();
        if room == 0 {
            // Still inside the request line means the target is too long (414).
            return Err(if buffer.contains(&b'\n') {
                RequestError::HeadTooLarge
            } else {
                RequestError::TargetTooLong
            });
        }
        let limit = room.min(chunk.len());
        match reader.read(&mut chunk[..limit]) {
            Ok(0) if buffer.is_empty() => return Err(RequestError::Empty),
            Ok(0) => {
                return Err(RequestError::Malformed(
                    "the connection closed before the request head was complete",
                ));
            }
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            Err(error) => match error.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                    return Err(RequestError::Timeout);
                }
                _ => return Err(RequestError::Io(error)),
            },
        }
    }
}

/// Finds the blank line that ends a head: `\r\n\r\n`, or `\n\n` from lenient clients
/// (RFC 9112 section 2.2 allows a bare LF as line end). Starts looking at `from`.
fn find_head_end(buffer: &[u8], from: usize) -> Option<usize> {
    (from..buffer.len()).find_map(|i| {
        if buffer[i] != b'\n' {
            return None;
        }
        match &buffer[i + 1..] {
            [b'\n', ..] => Some(i + 2),
            [b'\r', b'\n', ..] => Some(i + 3),
            _ => None,
        }
    })
}

/// Reads and drops exactly `count` bytes (a body already checked against the limit).
fn discard_exactly<R: Read>(reader: &mut R, count: u64) -> Result<(), RequestError> {
    let copied =
        io::copy(&mut reader.take(count), &mut io::sink()).map_err(|error| match error.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => RequestError::Timeout,
            _ => RequestError::Io(error),
        })?;
    if copied < count {
        return Err(RequestError::Malformed("the connection closed before the body was complete"));
    }
    Ok(())
}

/// What the head says: the request, and how many body bytes follow it.
struct ParsedHead {
    request: Request,
    content_length: u64,
}

/// Parses `METHOD SP TARGET SP HTTP/1.x` and the header lines after it (RFC 9112).
fn parse_head(head: &str) -> Result<ParsedHead, RequestError> {
    let mut lines = head.split('\n').map(|line| line.strip_suffix('\r').unwrap_or(line));
    let request_line = lines.next().unwrap_or("");
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(RequestError::Malformed(
            "expected a request line like \"GET /metrics HTTP/1.1\"",
        ));
    };
    if !is_token(method) {
        return Err(RequestError::Malformed("the method is not a valid token"));
    }
    let http_1_1 = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        _ if is_http_version(version) => return Err(RequestError::UnsupportedVersion),
        _ => return Err(RequestError::Malformed("expected HTTP/1.0 or HTTP/1.1")),
    };
    if target.len() > MAX_TARGET_BYTES {
        return Err(RequestError::TargetTooLong);
    }
    if !target.starts_with('/') || !target.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(RequestError::Malformed("expected a target that is a path starting with /"));
    }
    let path = target.split_once('?').map_or(target, |(path, _query)| path);

    let mut host_headers = 0;
    let (mut host, mut origin, mut authorization) = (None, None, None);
    let mut content_length: Option<u64> = None;
    // The head ends with an empty line, so the last two pieces of the split are empty.
    for line in lines.filter(|line| !line.is_empty()) {
        if line.starts_with([' ', '\t']) {
            return Err(RequestError::Malformed(
                "header lines may not be folded (start with a space)",
            ));
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(RequestError::Malformed("expected a header line like \"Name: value\""));
        };
        // A space before the colon is forbidden: it has been used to smuggle requests.
        if !is_token(name) {
            return Err(RequestError::Malformed("a header name is not a valid token"));
        }
        let value = value.trim_matches([' ', '\t']);
        if value.chars().any(|c| c.is_control() && c != '\t') {
            return Err(RequestError::Malformed("a header value holds a control character"));
        }
        if name.eq_ignore_ascii_case("host") {
            host_headers += 1;
            host = Some(value.to_string());
        } else if name.eq_ignore_ascii_case("origin") {
            // Two of these would leave it open which one counts: refuse the ambiguity.
            set_once(&mut origin, value, "expected at most one Origin header")?;
        } else if name.eq_ignore_ascii_case("authorization") {
            set_once(&mut authorization, value, "expected at most one Authorization header")?;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(RequestError::TransferEncoding);
        } else if name.eq_ignore_ascii_case("content-length") {
            let length = parse_content_length(value)?;
            if content_length.is_some_and(|earlier| earlier != length) {
                return Err(RequestError::Malformed("two different Content-Length headers"));
            }
            content_length = Some(length);
        }
    }
    // RFC 9112 section 3.2: a server must answer 400 to an HTTP/1.1 request without exactly
    // one Host header.
    if (http_1_1 && host_headers != 1) || host_headers > 1 {
        return Err(RequestError::Malformed("expected exactly one Host header"));
    }
    let content_length = content_length.unwrap_or(0);
    if content_length > MAX_BODY_BYTES {
        return Err(RequestError::BodyTooLarge);
    }
    Ok(ParsedHead {
        request: Request {
            method: method.to_string(),
            path: path.to_string(),
            host,
            origin,
            authorization,
        },
        content_length,
    })
}

/// Stores a header's value the first time it is seen; a second one is a 400.
fn set_once(
    slot: &mut Option<String>,
    value: &str,
    twice: &'static str,
) -> Result<(), RequestError> {
    if slot.is_some() {
        return Err(RequestError::Malformed(twice));
    }
    *slot = Some(value.to_string());
    Ok(())
}

/// `Content-Length` is one or more digits and nothing else (no sign, no list).
fn parse_content_length(value: &str) -> Result<u64, RequestError> {
    let malformed = RequestError::Malformed("Content-Length is not a number");
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed);
    }
    // Digits that overflow a u64 are certainly too large a body.
    value.parse().map_err(|_| RequestError::BodyTooLarge)
}

/// An RFC 9110 token: methods and header names. Letters, digits and ``!#$%&'*+-.^_`|~``.
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// `HTTP/` followed by a digit, a dot and a digit: a version we can name as unsupported.
fn is_http_version(text: &str) -> bool {
    matches!(text.as_bytes(), [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
        if major.is_ascii_digit() && minor.is_ascii_digit())
}

/// A complete response. Every response closes the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status line's code and reason.
    pub status: Status,
    /// The `Content-Type` header, e.g. [`Response::TEXT`] or the metrics format.
    pub content_type: &'static str,
    /// The body, sent with a `Content-Length`.
    pub body: Vec<u8>,
    /// For 405: the methods the path does allow, e.g. `"GET, HEAD"` (RFC 9110 requires it).
    pub allow: Option<&'static str>,
    /// For 401: the `WWW-Authenticate` challenge, e.g. `Bearer` (RFC 9110 requires one).
    pub challenge: Option<&'static str>,
}

impl Response {
    /// The content type of plain-text answers.
    pub const TEXT: &'static str = "text/plain; charset=utf-8";

    /// A plain-text response; by convention the body ends with a newline, for curl users.
    pub fn text(status: Status, body: impl Into<String>) -> Response {
        Response {
            status,
            content_type: Response::TEXT,
            body: body.into().into_bytes(),
            allow: None,
            challenge: None,
        }
    }

    /// 404 with a short text body.
    pub fn not_found() -> Response {
        Response::text(Status::NotFound, "not found\n")
    }

    /// 405 listing the methods the path does accept.
    pub fn method_not_allowed(allow: &'static str) -> Response {
        Response {
            allow: Some(allow),
            ..Response::text(Status::MethodNotAllowed, format!("use {allow}\n"))
        }
    }
}

/// Writes `response` with its body, a `Content-Length` and `Connection: close`.
///
/// # Errors
/// Returns the writer's error, for example when the client has gone away.
pub fn respond<W: Write>(writer: &mut W, response: &Response) -> io::Result<()> {
    write_response(writer, response, true)
}

/// Writes the status line and headers, then the body unless `send_body` is false (the
/// answer to `HEAD` has the same headers as for `GET` but no body, RFC 9110 section 9.3.2).
fn write_response<W: Write>(
    writer: &mut W,
    response: &Response,
    send_body: bool,
) -> io::Result<()> {
    let status = response.status;
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        status.code(),
        status.reason(),
        response.content_type,
        response.body.len()
    );
    if let Some(allow) = response.allow {
        head.push_str(&format!("Allow: {allow}\r\n"));
    }
    if let Some(challenge) = response.challenge {
        head.push_str(&format!("WWW-Authenticate: {challenge}\r\n"));
    }
    head.push_str("\r\n");
    // One buffer, one write: the head and a small body usually leave in one segment.
    let mut bytes = head.into_bytes();
    if send_body {
        bytes.extend_from_slice(&response.body);
    }
    writer.write_all(&bytes)?;
    writer.flush()
}

/// Serves one request on an accepted admin connection, up to the written response; the
/// caller then closes with [`linger_close`] once it knows the answer is out.
///
/// Reads the request within `timeout` (one deadline for the whole request, so a client
/// sending a byte a second cannot hold the thread longer), calls `handler(request)`
/// for a valid request or answers the error's status itself, and writes the response with
/// the same timeout for each write and 10 s for the whole ([`ANSWER_DEADLINE`], so a client
/// reading a big answer slowly cannot hold the thread longer either). For `HEAD` the
/// handler's response is sent without its body.
///
/// Another thread may `shutdown` the stream at any time (the admin endpoint does, to make
/// room for a new client when every handler is busy): the read or write in progress then
/// fails or ends at once, and this returns.
///
/// Returns the status sent, or `None` when the client left without sending anything.
///
/// # Errors
/// Returns an error when reading the request or writing the response fails (for example,
/// the client reset the connection), and `InvalidInput` when `timeout` is zero. The caller
/// logs it at debug level and moves on.
pub fn respond_to_one(
    stream: &Stream,
    timeout: Duration,
    handler: impl FnOnce(&Request) -> Response,
) -> io::Result<Option<Status>> {
    let deadline = Instant::now() + timeout;
    let mut reader = DeadlineReader { stream, deadline };
    let mut writer = DeadlineWriter::new(stream, timeout, ANSWER_DEADLINE);
    answer(&mut reader, &mut writer, handler)
}

/// The heart of [`respond_to_one`] without the socket: reads one request from `reader`, writes
/// its response to `writer`, and returns the status sent (`None`: the client sent nothing).
///
/// Whatever `reader` yields, what reaches `writer` is one complete, well-formed response
/// or nothing; the fuzz tests at the end of this file check exactly that.
///
/// # Errors
/// A read error other than a timeout (the client reset the connection), or the writer's.
pub fn answer<R: Read, W: Write>(
    reader: &mut R,
    writer: &mut W,
    handler: impl FnOnce(&Request) -> Response,
) -> io::Result<Option<Status>> {
    let (response, send_body) = match read_request(reader) {
        Ok(request) => (handler(&request), request.method != "HEAD"),
        Err(RequestError::Empty) => return Ok(None),
        Err(RequestError::Io(error)) => return Err(error),
        Err(error) => {
            let status = error.status().unwrap_or(Status::BadRequest);
            (Response::text(status, format!("{error}\n")), true)
        }
    };
    write_response(writer, &response, send_body)?;
    Ok(Some(response.status))
}

/// Half-closes, then drains what the client still sends, for at most one second and 64 KiB.
/// Errors are ignored: the response is already written, and the stream is dropped next.
///
/// Why: closing a socket whose receive buffer still holds unread bytes makes the kernel send
/// a reset instead of a FIN, and a reset can destroy the response before the client reads
/// it. Draining first is the "lingering close" of RFC 9112 section 9.6.
pub fn linger_close(stream: &Stream) {
    if stream.shutdown(Shutdown::Write).is_err() {
        return;
    }
    let linger_deadline = Instant::now() + LINGER_TIME;
    let mut reader = DeadlineReader { stream, deadline: linger_deadline };
    let _ = io::copy(&mut (&mut reader).take(LINGER_BYTES as u64), &mut io::sink());
}

/// A stream reader that gives up at a fixed instant: before each read it sets the
/// socket's read timeout to the time left, so many slow reads cannot add up past it.
struct DeadlineReader<'a> {
    stream: &'a Stream,
    deadline: Instant,
}

/// A stream writer that gives up `within` after its first write, and on any one write that
/// makes no progress for `each`: before each write it sets the socket's write timeout to the
/// shorter of `each` and the time left.
struct DeadlineWriter<'a> {
    stream: &'a Stream,
    each: Duration,
    within: Duration,
    /// Set at the first write.
    deadline: Option<Instant>,
}

impl<'a> DeadlineWriter<'a> {
    fn new(stream: &'a Stream, each: Duration, within: Duration) -> DeadlineWriter<'a> {
        DeadlineWriter { stream, each, within, deadline: None }
    }
}

impl Write for DeadlineWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let within = self.within;
        let deadline = *self.deadline.get_or_insert_with(|| Instant::now() + within);
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            // `set_write_timeout(Some(0))` is an error, so the deadline is checked here.
            return Err(io::Error::new(io::ErrorKind::TimedOut, "answer deadline passed"));
        }
        self.stream.set_write_timeout(Some(left.min(self.each)))?;
        let mut stream = self.stream;
        stream.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(()) // a socket has nothing buffered to flush
    }
}

impl Read for DeadlineReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let left = self.deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                // `set_read_timeout(Some(0))` is an error, so the deadline is checked here.
                return Err(io::Error::new(io::ErrorKind::TimedOut, "request deadline passed"));
            }
            let wait = SHUTDOWN_CHECK.map_or(left, |check| check.min(left));
            self.stream.set_read_timeout(Some(wait))?;
            let mut stream = self.stream;
            match stream.read(buf) {
                // A slice passed: read again, which fails at once if we were shut down.
                Err(error)
                    if wait < left
                        && matches!(
                            error.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) =>
                {
                    continue;
                }
                result => return result,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzz::XorShift;
    use std::net::{TcpListener, TcpStream};

    /// Parses `bytes` as a whole request.
    fn parse(bytes: &[u8]) -> Result<Request, RequestError> {
        read_request(&mut &bytes[..])
    }

    fn status_of(bytes: &[u8]) -> Option<Status> {
        match parse(bytes) {
            Ok(_) => Some(Status::Ok),
            Err(error) => error.status(),
        }
    }

    /// Hands out its bytes `step` at a time, then reports end of stream or `final_error`.
    struct ChoppyReader {
        bytes: Vec<u8>,
        position: usize,
        step: usize,
        final_error: Option<io::ErrorKind>,
    }

    impl ChoppyReader {
        fn new(bytes: &[u8], step: usize) -> ChoppyReader {
            ChoppyReader { bytes: bytes.to_vec(), position: 0, step, final_error: None }
        }
    }

    impl Read for ChoppyReader {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let left = self.bytes.len() - self.position;
            if left == 0 {
                if let Some(kind) = self.final_error {
                    return Err(io::Error::from(kind));
                }
            }
            let n = left.min(self.step).min(buf.len());
            buf[..n].copy_from_slice(&self.bytes[self.position..self.position + n]);
            self.position += n;
            Ok(n)
        }
    }

    #[test]
    fn parses_a_simple_get() {
        let request =
            parse(b"GET /metrics HTTP/1.1\r\nHost: localhost:9090\r\nAccept: */*\r\n\r\n")
                .expect("valid request");
        assert_eq!(request.method, "GET");
        assert_eq!(request.path, "/metrics");
    }

    #[test]
    fn drops_the_query_string() {
        let request = parse(b"GET /metrics?format=text HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!(request.path, "/metrics");
    }

    #[test]
    fn accepts_http_1_0_without_host_and_bare_lf_lines() {
        assert_eq!(parse(b"GET /healthz HTTP/1.0\r\n\r\n").unwrap().path, "/healthz");
        assert_eq!(parse(b"GET /healthz HTTP/1.1\nHost: x\n\n").unwrap().path, "/healthz");
    }

    #[test]
    fn reads_a_request_that_arrives_one_byte_at_a_time() {
        let bytes = b"POST /drain HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello";
        let mut reader = ChoppyReader::new(bytes, 1);
        let request = read_request(&mut reader).expect("valid request");
        assert_eq!((request.method.as_str(), request.path.as_str()), ("POST", "/drain"));
        assert_eq!(reader.position, bytes.len(), "the body was read to the end");
    }

    #[test]
    fn consumes_a_short_body_that_arrived_with_the_head() {
        let bytes = b"POST /drain HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc";
        let mut reader = ChoppyReader::new(bytes, 4096);
        assert!(read_request(&mut reader).is_ok());
        assert_eq!(reader.position, bytes.len());
    }

    #[test]
    fn every_kind_of_bad_request_gets_its_status() {
        use Status::*;
        let long_target = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(2000));
        let long_line = format!("GET /{}", "a".repeat(10_000));
        let big_head = format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "b".repeat(9000));
        let cases: Vec<(&[u8], Status)> = vec![
            (b"GET /metrics\r\n\r\n", BadRequest),
            (b"GET  /metrics HTTP/1.1\r\nHost: x\r\n\r\n", BadRequest),
            (b"GET /metrics HTTP/1.1 extra\r\nHost: x\r\n\r\n", BadRequest),
            (b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n", BadRequest),
            (b"GET metrics HTTP/1.1\r\nHost: x\r\n\r\n", BadRequest),
            (b"GET http://x/metrics HTTP/1.1\r\nHost: x\r\n\r\n", BadRequest),
            (b"GET * HTTP/1.1\r\nHost: x\r\n\r\n", BadRequest),
            (b"GET /a\x7fb HTTP/1.1\r\nHost: x\r\n\r\n", BadRequest),
            (b"GET / HTTP/1.1\r\n\r\n", BadRequest),
            (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", BadRequest),
            (b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", BadRequest),
            (b"GET / HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n", BadRequest),
            (b"GET / HTTP/1.1\r\nHost: x\r\n: empty\r\n\r\n", BadRequest),
            (b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", BadRequest),
            (b"GET / HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n", BadRequest),
            (b"GET / HTTP/1.1\r\nHost: \xff\r\n\r\n", BadRequest),
            (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", BadRequest),
            (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", BadRequest),
            (
                b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
                BadRequest,
            ),
            (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nab", BadRequest),
            (b"GET / HTTP/1.1\r\nHost: x\r\n", BadRequest),
            (b"GET / HTTP/1.1\r\nHost: x\r\n\r", BadRequest),
            (b"\r\n\r\n", BadRequest),
            (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", HttpVersionNotSupported),
            (b"GET / HTTP/1.2\r\nHost: x\r\n\r\n", HttpVersionNotSupported),
            (b"GET / HTTP/1\r\nHost: x\r\n\r\n", BadRequest),
            (b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", NotImplemented),
            (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1025\r\n\r\n", ContentTooLarge),
            (
                b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n",
                ContentTooLarge,
            ),
            (long_target.as_bytes(), UriTooLong),
            (long_line.as_bytes(), UriTooLong),
            (big_head.as_bytes(), HeaderFieldsTooLarge),
        ];
        for (bytes, expected) in cases {
            let shown = String::from_utf8_lossy(&bytes[..bytes.len().min(80)]).into_owned();
            assert_eq!(status_of(bytes), Some(expected), "for {shown:?}");
        }
    }

    #[test]
    fn an_empty_connection_is_not_answered() {
        assert!(matches!(parse(b""), Err(RequestError::Empty)));
        assert_eq!(RequestError::Empty.status(), None);
    }

    #[test]
    fn read_timeouts_become_408_on_every_platform() {
        for kind in [io::ErrorKind::WouldBlock, io::ErrorKind::TimedOut] {
            let mut reader = ChoppyReader::new(b"GET / HTTP/1.1\r\n", 4096);
            reader.final_error = Some(kind);
            let error = read_request(&mut reader).unwrap_err();
            assert_eq!(error.status(), Some(Status::RequestTimeout), "{kind:?}");
        }
    }

    #[test]
    fn a_reset_connection_cannot_be_answered() {
        let mut reader = ChoppyReader::new(b"GET / HTT", 4096);
        reader.final_error = Some(io::ErrorKind::ConnectionReset);
        let error = read_request(&mut reader).unwrap_err();
        assert!(matches!(error, RequestError::Io(_)));
        assert_eq!(error.status(), None);
    }

    #[test]
    fn never_reads_more_than_the_head_limit_from_an_endless_line() {
        let endless = vec![b'A'; 1024 * 1024];
        let mut reader = ChoppyReader::new(&endless, 1000);
        let error = read_request(&mut reader).unwrap_err();
        assert_eq!(error.status(), Some(Status::UriTooLong));
        assert_eq!(reader.position, MAX_HEAD_BYTES);
    }

    /// Whatever the input, the result is a request or an error with a status (or one of the
    /// two errors that cannot be answered), and nothing panics.
    fn check_no_panic(bytes: &[u8]) {
        let step = 1 + bytes.len() % 7;
        match read_request(&mut ChoppyReader::new(bytes, step)) {
            Ok(request) => assert!(request.path.starts_with('/')),
            Err(RequestError::Empty) => assert!(bytes.is_empty()),
            Err(error) => {
                let code = error.status().expect("every parse error has a status").code();
                assert!((400..=505).contains(&code));
            }
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        // Bytes that make up requests are more likely to reach deep into the parser.
        let alphabet = b"GET POST/HTTP1.0:\r\n\r\n Host:x Content-Length:9 \t\x00\xff?%";
        for _ in 0..3000 {
            let len = rng.below(400);
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    if rng.below(4) == 0 {
                        rng.next() as u8
                    } else {
                        alphabet[rng.below(alphabet.len())]
                    }
                })
                .collect();
            check_no_panic(&bytes);
        }
    }

    #[test]
    fn every_truncation_and_mutation_of_a_valid_request_is_handled() {
        let valid: &[u8] =
            b"POST /drain?now=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nX: y\r\n\r\nbody";
        assert!(parse(valid).is_ok());
        for cut in 0..valid.len() {
            check_no_panic(&valid[..cut]);
        }
        let mut rng = XorShift(42);
        for _ in 0..3000 {
            let mut bytes = valid.to_vec();
            for _ in 0..1 + rng.below(3) {
                let at = rng.below(bytes.len());
                match rng.below(3) {
                    0 => bytes[at] = rng.next() as u8,
                    1 => {
                        bytes.remove(at);
                    }
                    _ => bytes.insert(at, rng.next() as u8),
                }
            }
            check_no_panic(&bytes);
        }
    }

    /// Checks that `bytes` is exactly one well-formed response: a status line with a known
    /// code, header lines free of control characters, `Connection: close`, one
    /// `Content-Length` that the body matches (no body for `HEAD`), and the headers its
    /// status requires. Returns the status code.
    fn assert_well_formed(bytes: &[u8], head_request: bool) -> u16 {
        let shown = String::from_utf8_lossy(bytes).into_owned();
        let text = std::str::from_utf8(bytes).unwrap_or_else(|_| panic!("not UTF-8: {shown:?}"));
        let (head, body) = text.split_once("\r\n\r\n").expect("a blank line ends the head");
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let rest = status_line.strip_prefix("HTTP/1.1 ").expect("an HTTP/1.1 status line");
        let (code, reason) = rest.split_once(' ').expect("a code and a reason");
        let code: u16 = code.parse().expect("a numeric code");
        assert!((200..=505).contains(&code) && !reason.is_empty(), "{status_line:?}");
        let mut content_length = None;
        let mut names = Vec::new();
        for line in lines {
            let (name, value) = line.split_once(": ").expect("Name: value");
            assert!(is_token(name), "header name {name:?}");
            assert!(!value.chars().any(char::is_control), "control character in {line:?}");
            if name == "Content-Length" {
                assert!(content_length.is_none(), "two Content-Length headers: {shown:?}");
                content_length = Some(value.parse::<usize>().expect("a numeric Content-Length"));
            }
            names.push(name);
        }
        assert!(names.contains(&"Connection") && head.contains("Connection: close"), "{shown:?}");
        let length = content_length.expect("a Content-Length");
        assert_eq!(body.len(), if head_request { 0 } else { length }, "{shown:?}");
        match code {
            401 => assert!(names.contains(&"WWW-Authenticate"), "{shown:?}"),
            405 => assert!(names.contains(&"Allow"), "{shown:?}"),
            _ => {}
        }
        code
    }

    /// What the admin endpoint does with a request, access rules included (with a token, so
    /// that every rule is reached), and a body that echoes the request's fields back.
    fn guarded_handler(request: &Request) -> Response {
        use crate::net::address::Address;
        use crate::ops::admin::refusal;
        use crate::settings::admin_access::{AdminAccess, AdminToken};
        let token = AdminToken::new(std::path::Path::new("/t"), "0123456789abcdef")
            .expect("a valid test token");
        let access = AdminAccess { token: Some(token), ..AdminAccess::default() };
        let local = Address::Tcp("127.0.0.1:9090".parse().expect("an address"));
        refusal(request, &access, &local).unwrap_or_else(|| match request.path.as_str() {
            "/healthz" => Response::method_not_allowed("GET, HEAD"),
            _ => Response::text(Status::Ok, format!("{request:?}\n")),
        })
    }

    /// The fuzz loop's one case: parse, decide, answer, and check what was written.
    fn check_answer(bytes: &[u8]) {
        let step = 1 + bytes.len() % 5;
        let mut out = Vec::new();
        let result = answer(&mut ChoppyReader::new(bytes, step), &mut out, guarded_handler);
        match result {
            Ok(Some(status)) => {
                // A HEAD that parsed is answered without a body; everything else with one.
                let head = read_request(&mut &bytes[..]).is_ok_and(|r| r.method == "HEAD");
                assert_eq!(assert_well_formed(&out, head), status.code());
            }
            Ok(None) => assert!(bytes.is_empty() && out.is_empty()),
            Err(error) => panic!("a byte slice cannot fail to read: {error}"),
        }
    }

    /// A bounded mutation fuzzer over whole exchanges: valid requests (with the headers the
    /// access rules read) have bytes flipped, dropped, inserted, duplicated and cut, a few
    /// thousand times from a fixed seed. Zero panics, and every answer well-formed.
    #[test]
    fn fuzzed_requests_always_get_one_well_formed_response() {
        let seeds: [&[u8]; 5] = [
            b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9090\r\nAuthorization: Bearer 0123456789abcdef\r\n\r\n",
            b"POST /drain HTTP/1.1\r\nHost: 127.0.0.1:9090\r\nOrigin: http://evil.example\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 3\r\n\r\na=1",
            b"POST /drain HTTP/1.1\r\nHost: evil.example:9090\r\nAuthorization: Bearer 0123456789abcdef\r\nContent-Length: 0\r\n\r\n",
            b"HEAD /healthz HTTP/1.0\r\n\r\n",
            b"DELETE /healthz?x=1 HTTP/1.1\nHost: [::1]:9090\nAuthorization: bearer  0123456789abcdef\n\n",
        ];
        for seed in seeds {
            check_answer(seed);
        }
        let mut rng = XorShift(0x5EED_AD41_0000_0015);
        let interesting =
            [&b"\r\n"[..], b": ", b"Bearer ", b"Origin", b"Host", b"\x00", b"\xff", b" "];
        for _ in 0..4000 {
            let mut bytes = seeds[rng.below(seeds.len())].to_vec();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(bytes.len() + 1);
                match rng.below(5) {
                    0 if at < bytes.len() => bytes[at] = rng.next() as u8,
                    1 if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    2 => {
                        let piece = interesting[rng.below(interesting.len())];
                        bytes.splice(at..at, piece.iter().copied());
                    }
                    3 if at < bytes.len() => {
                        let end = (at + rng.below(16)).min(bytes.len());
                        let copy = bytes[at..end].to_vec();
                        bytes.splice(at..at, copy);
                    }
                    _ => bytes.truncate(at),
                }
            }
            check_answer(&bytes);
        }
    }

    #[test]
    fn writes_the_exact_response_bytes() {
        let mut out = Vec::new();
        respond(&mut out, &Response::text(Status::Ok, "ok\n")).unwrap();
        assert_eq!(
            out,
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n"
        );

        let mut out = Vec::new();
        respond(&mut out, &Response::method_not_allowed("POST")).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 9\r\nConnection: close\r\nAllow: POST\r\n\r\nuse POST\n"
        );
    }

    // ---- serve_one on real loopback sockets ----

    /// One request served the way the admin endpoint serves it: the response, then the
    /// lingering close unless the client sent nothing.
    fn serve_one(
        stream: &Stream,
        timeout: Duration,
        handler: impl FnOnce(&Request) -> Response,
    ) -> io::Result<Option<Status>> {
        let status = respond_to_one(stream, timeout, handler)?;
        if status.is_some() {
            linger_close(stream);
        }
        Ok(status)
    }

    /// Runs `serve_one` on one accepted connection while `client` talks to it; returns what
    /// `serve_one` returned and the methods and paths the handler saw.
    fn serve_with_client(
        timeout: Duration,
        client: impl FnOnce(TcpStream) + Send,
    ) -> (io::Result<Option<Status>>, Vec<(String, String)>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
        let address = listener.local_addr().expect("listener address");
        let mut seen = Vec::new();
        let result = std::thread::scope(|scope| {
            let client_thread = scope.spawn(move || {
                let stream = TcpStream::connect(address).expect("connect to the test listener");
                stream
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .expect("set a client read timeout");
                client(stream);
            });
            let (stream, _) = listener.accept().expect("accept the test client");
            let stream = Stream::Tcp(stream);
            let result = serve_one(&stream, timeout, |request| {
                let (method, path) = (request.method.as_str(), request.path.as_str());
                seen.push((method.to_string(), path.to_string()));
                match (method, path) {
                    ("GET" | "HEAD", "/healthz") => Response::text(Status::Ok, "ok\n"),
                    (_, "/healthz") => Response::method_not_allowed("GET, HEAD"),
                    _ => Response::not_found(),
                }
            });
            drop(stream);
            client_thread.join().expect("the client thread panicked");
            result
        });
        (result, seen)
    }

    /// Sends `request` and half-closes, as a one-shot client does, then reads the whole
    /// response (until the server closes).
    fn exchange(stream: TcpStream, request: &[u8]) -> String {
        send_then_read(stream, request, true)
    }

    fn send_then_read(mut stream: TcpStream, request: &[u8], half_close: bool) -> String {
        stream.write_all(request).expect("send the request");
        if half_close {
            stream.shutdown(Shutdown::Write).expect("half-close the client");
        }
        let mut response = Vec::new();
        stream.read_to_end(&mut response).expect("read the response");
        String::from_utf8(response).expect("the response is UTF-8")
    }

    #[test]
    fn a_client_reading_a_big_answer_slowly_is_cut_at_the_answer_deadline() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
        let client = TcpStream::connect(listener.local_addr().expect("an address")).unwrap();
        let (server, _) = listener.accept().expect("accept the test client");
        let server = Stream::Tcp(server);
        let stop = std::sync::atomic::AtomicBool::new(false);
        let (result, took) = std::thread::scope(|scope| {
            // Reads steadily (so no single write waits long), far too slowly for 64 MB.
            scope.spawn(|| {
                let mut chunk = [0; 16 * 1024];
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    match (&client).read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            });
            let started = Instant::now();
            let mut writer =
                DeadlineWriter::new(&server, Duration::from_secs(5), Duration::from_millis(300));
            let result = writer.write_all(&vec![b'x'; 64 << 20]);
            let took = started.elapsed();
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
            let _ = server.shutdown(Shutdown::Both);
            (result, took)
        });
        let error = result.expect_err("64 MB at about 1.6 MB/s cannot be written in 300 ms");
        assert!(
            matches!(error.kind(), io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock),
            "{error}"
        );
        // Not a speed check: without the deadline it would take some 40 s.
        assert!(took < Duration::from_secs(5), "the deadline was not kept: {took:?}");
    }

    #[test]
    fn serves_a_get_over_a_real_socket() {
        let (result, seen) = serve_with_client(Duration::from_secs(10), |stream| {
            let response = exchange(stream, b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
            assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
            assert!(response.ends_with("\r\n\r\nok\n"), "{response}");
        });
        assert_eq!(result.unwrap(), Some(Status::Ok));
        assert_eq!(seen, [("GET".to_string(), "/healthz".to_string())]);
    }

    #[test]
    fn head_gets_the_headers_without_the_body() {
        let (result, _) = serve_with_client(Duration::from_secs(10), |stream| {
            let response = exchange(stream, b"HEAD /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
            assert!(response.contains("Content-Length: 3\r\n"), "{response}");
            assert!(response.ends_with("\r\n\r\n"), "{response}");
        });
        assert_eq!(result.unwrap(), Some(Status::Ok));
    }

    #[test]
    fn an_oversized_head_gets_a_complete_431_and_the_handler_is_not_called() {
        let (result, seen) = serve_with_client(Duration::from_secs(10), |stream| {
            let mut request = b"GET / HTTP/1.1\r\nHost: t\r\n".to_vec();
            request.extend(std::iter::repeat_n(b'x', 3 * MAX_HEAD_BYTES));
            let response = exchange(stream, &request);
            assert!(response.starts_with("HTTP/1.1 431 "), "{response}");
            assert!(response.ends_with("bytes\n"), "{response}");
        });
        assert_eq!(result.unwrap(), Some(Status::HeaderFieldsTooLarge));
        assert!(seen.is_empty());
    }

    #[test]
    fn a_silent_client_gets_408_at_the_deadline() {
        let (result, seen) = serve_with_client(Duration::from_millis(200), |stream| {
            // No half-close: the request is unfinished and the client keeps waiting.
            let response = send_then_read(stream, b"GET /healthz HTT", false);
            assert!(response.starts_with("HTTP/1.1 408 "), "{response}");
        });
        assert_eq!(result.unwrap(), Some(Status::RequestTimeout));
        assert!(seen.is_empty());
    }

    #[test]
    fn a_client_that_leaves_at_once_is_not_an_error() {
        let (result, seen) = serve_with_client(Duration::from_secs(10), drop);
        assert_eq!(result.unwrap(), None);
        assert!(seen.is_empty());
    }
}
