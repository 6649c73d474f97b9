//! The HTTP client both generators share.
//!
//! # Cheap per request
//!
//! The server under test often shares the machine (two cores), so every cycle spent here is
//! taken from it. The client therefore uses hyper's low-level connection API
//! ([`hyper::client::conn::http1::handshake`]) over a `TCP_NODELAY` [`TcpStream`]: no pool, no
//! per-request task, one [`Client`] per worker with requests sent strictly in sequence on one
//! keep-alive connection.
//!
//! # Failures are bounded
//!
//! A transport failure (connect, write, read or [`REQUEST_TIMEOUT`]) drops the connection and
//! sends the same request again — same idempotency key, which is exactly what makes that safe —
//! on a fresh connection, at most [`TRANSPORT_RETRIES_MAX`] times. A keep-alive connection the
//! server closed while it sat idle is not a failure: the request just goes out on a fresh one.
//! Error statuses are answers, never retried. Every wait is bounded ([`CONNECT_TIMEOUT`],
//! [`REQUEST_TIMEOUT`]).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE, HOST};
use hyper::http::uri::Authority;
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::LoadgenError;

/// How many times a request that failed on the transport is sent again on a fresh connection
/// before it is given up.
pub const TRANSPORT_RETRIES_MAX: u32 = 3;

/// Longest wait for a host name lookup, or for a TCP connection and HTTP/1.1 handshake.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest wait for one try of one request: connection ready, request written, whole answer
/// read.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The `Idempotency-Key` request header.
const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// The `Prefer` request header (`Prefer: wait=N`).
const PREFER: HeaderName = HeaderName::from_static("prefer");

/// An edge to send requests to.
#[derive(Debug, Clone)]
pub struct Target {
    /// `http://host:port`, as reports show it.
    pub url: String,
    /// Where the connections go.
    pub addr: SocketAddr,
    /// The `Host` header: the host and port as given.
    host: HeaderValue,
}

impl Target {
    /// Parses `http://host[:port][/]` and resolves the host (the first address wins).
    ///
    /// Only plain HTTP is spoken, and the URL names the edge only: the API paths are the
    /// generators' business, so a URL with a path is refused rather than half-honoured.
    pub async fn resolve(url: &str) -> Result<Target, LoadgenError> {
        let invalid = |message: String| LoadgenError::InvalidTarget {
            target: url.to_owned(),
            message,
        };
        let Some(rest) = url.strip_prefix("http://") else {
            return Err(invalid(if url.starts_with("https://") {
                "https is not supported: the edge speaks plain HTTP (give the http:// address \
                 behind any TLS proxy)"
                    .into()
            } else {
                "must start with http://, e.g. http://127.0.0.1:8080".into()
            }));
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
            return Err(invalid(
                "give only the scheme, host and port, e.g. http://127.0.0.1:8080 (the API \
                 paths are added for you)"
                    .into(),
            ));
        }
        let parsed: Authority = authority
            .parse()
            .map_err(|e| invalid(format!("not a valid host and port: {e}")))?;
        // `port_u16` is `None` both without a port and with one out of range: tell them apart
        // by whether anything follows the host.
        let port = match parsed.port_u16() {
            Some(port) if port > 0 => port,
            None if parsed.as_str() == parsed.host() => 80,
            _ => return Err(invalid("the port must be a number from 1 to 65535".into())),
        };
        // `[::1]` is how a URL writes an IPv6 host; the resolver wants it bare.
        let host = parsed.host().trim_start_matches('[').trim_end_matches(']');
        let lookup = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::lookup_host((host, port)))
            .await
            .map_err(|_| {
                invalid(format!(
                    "no answer from the resolver within {CONNECT_TIMEOUT:?}"
                ))
            })?
            .map_err(|e| invalid(format!("cannot resolve {host}: {e}")))?;
        let addr = lookup
            .into_iter()
            .next()
            .ok_or_else(|| invalid(format!("{host} resolves to no address")))?;
        Ok(Target {
            url: format!("http://{parsed}"),
            addr,
            host: HeaderValue::from_str(parsed.as_str())
                .expect("a parsed authority is a valid Host header value"),
        })
    }

    /// Checks that the target accepts a TCP connection, so that a wrong address is one clear
    /// error instead of a run in which every request fails.
    pub async fn probe(&self) -> Result<(), LoadgenError> {
        connect_tcp(self.addr)
            .await
            .map(drop)
            .map_err(|source| LoadgenError::Unreachable {
                target: self.url.clone(),
                source,
            })
    }
}

impl From<SocketAddr> for Target {
    fn from(addr: SocketAddr) -> Self {
        Target {
            url: format!("http://{addr}"),
            addr,
            host: HeaderValue::from_str(&addr.to_string())
                .expect("a socket address is a valid Host header value"),
        }
    }
}

/// What a [`Client`] went through on the transport, for the reports.
#[derive(Debug, Clone, Default)]
pub struct TransportStats {
    /// Failed tries: connect, write, read or [`REQUEST_TIMEOUT`]. Each one dropped its
    /// connection; the next try opened a fresh one.
    pub failed_tries: u64,
    /// Connections opened: the first, plus one after each failure or each keep-alive
    /// connection the server closed.
    pub connections_opened: u64,
    /// The last failure seen, if any, for the human report.
    pub last_failure: Option<String>,
}

impl TransportStats {
    /// Adds another client's stats.
    pub fn absorb(&mut self, other: TransportStats) {
        self.failed_tries += other.failed_tries;
        self.connections_opened += other.connections_opened;
        if other.last_failure.is_some() {
            self.last_failure = other.last_failure;
        }
    }
}

/// A POST that carries an idempotency key: the parts that change from request to request.
#[derive(Debug, Clone, Copy)]
pub struct Post<'a> {
    /// The path, e.g. `/v1/campaigns/spring/claims`.
    pub uri: &'a Uri,
    /// `Idempotency-Key`.
    pub key: &'a HeaderValue,
    /// The JSON body.
    pub body: &'a Bytes,
    /// `Prefer`, e.g. `wait=0`, when the caller wants less than the edge's wait budget.
    pub prefer: Option<&'a HeaderValue>,
}

/// How one request ended.
#[derive(Debug)]
pub struct Exchange {
    /// The status and the whole body; `None` when every try failed on the transport.
    pub answer: Option<(StatusCode, Bytes)>,
    /// When the request was first handed to a ready connection to be written; `None` if no
    /// try got that far.
    pub first_sent: Option<Instant>,
}

/// One keep-alive HTTP/1.1 connection to one target, reopened when it fails. Requests on it
/// go strictly one after another.
#[derive(Debug)]
pub struct Client {
    target: Target,
    conn: Option<Conn>,
    /// What happened on the transport so far.
    pub stats: TransportStats,
}

impl Client {
    /// A client that connects on its first request.
    pub fn new(target: Target) -> Self {
        Self {
            target,
            conn: None,
            stats: TransportStats::default(),
        }
    }

    /// Opens the connection now rather than on the first request, so that the first request
    /// does not pay for the handshake. A failure is left for the first request to meet (and
    /// count).
    pub async fn warm_up(&mut self) {
        if self.conn.is_none() {
            if let Ok(conn) = connect(self.target.addr).await {
                self.stats.connections_opened += 1;
                self.conn = Some(conn);
            }
        }
    }

    /// Sends one POST and reads the whole answer, retrying on fresh connections after
    /// transport failures (at most [`TRANSPORT_RETRIES_MAX`] times, and not at all once
    /// `keep_trying` says no).
    pub async fn post(&mut self, post: Post<'_>, keep_trying: impl Fn() -> bool) -> Exchange {
        self.send(Method::POST, post, keep_trying).await
    }

    /// Sends one GET of `uri` (a view or a request's status) and reads the whole answer,
    /// retried like [`Client::post`] (a GET is safe to repeat).
    pub async fn get(&mut self, uri: &Uri, keep_trying: impl Fn() -> bool) -> Exchange {
        let no_body = Bytes::new();
        let get = Post {
            uri,
            key: &HeaderValue::from_static(""),
            body: &no_body,
            prefer: None,
        };
        self.send(Method::GET, get, keep_trying).await
    }

    async fn send(
        &mut self,
        method: Method,
        post: Post<'_>,
        keep_trying: impl Fn() -> bool,
    ) -> Exchange {
        let mut first_sent = None;
        let mut failures = 0;
        loop {
            let attempt = self.attempt(method.clone(), post, &mut first_sent);
            let outcome = tokio::time::timeout(REQUEST_TIMEOUT, attempt)
                .await
                .unwrap_or_else(|_| {
                    Err(AttemptError::failed(format!(
                        "no answer within {REQUEST_TIMEOUT:?}"
                    )))
                });
            match outcome {
                Ok(answer) => {
                    return Exchange {
                        answer: Some(answer),
                        first_sent,
                    }
                }
                Err(error) => {
                    self.conn = None;
                    if error.stale {
                        // Only a reused connection can be stale and the next one is fresh, so
                        // this cannot repeat without a real failure in between.
                        continue;
                    }
                    self.stats.failed_tries += 1;
                    self.stats.last_failure = Some(error.message);
                    failures += 1;
                    if failures > TRANSPORT_RETRIES_MAX || !keep_trying() {
                        return Exchange {
                            answer: None,
                            first_sent,
                        };
                    }
                }
            }
        }
    }

    /// One try of one request on the current connection, opening one if needed.
    async fn attempt(
        &mut self,
        method: Method,
        post: Post<'_>,
        first_sent: &mut Option<Instant>,
    ) -> Result<(StatusCode, Bytes), AttemptError> {
        let conn = match &mut self.conn {
            Some(conn) if !conn.sender.is_closed() => conn,
            slot => {
                let fresh = connect(self.target.addr).await?;
                self.stats.connections_opened += 1;
                slot.insert(fresh)
            }
        };
        let reused = conn.answered > 0;
        // A GET carries no Idempotency-Key (its `key` is empty).
        let key = (!post.key.is_empty()).then(|| post.key.clone());
        let request = build_request(
            method,
            post.uri.clone(),
            self.target.host.clone(),
            key,
            post.prefer.cloned(),
            post.body.clone(),
        );
        let sender = &mut conn.sender;
        sender.ready().await.map_err(|e| AttemptError {
            message: format!("connection closed: {e}"),
            stale: reused,
        })?;
        first_sent.get_or_insert_with(Instant::now);
        let answer = exchange(sender, request)
            .await
            .map_err(AttemptError::failed)?;
        conn.answered += 1;
        Ok(answer)
    }
}

/// Sends one request on a ready connection and reads the whole answer. The whole body is
/// always read: the next request on this connection needs it gone.
async fn exchange(
    sender: &mut SendRequest<Full<Bytes>>,
    request: Request<Full<Bytes>>,
) -> Result<(StatusCode, Bytes), String> {
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("reading the answer failed: {e}"))?
        .to_bytes();
    Ok((status, body))
}

/// A request to the edge. Everything it takes is already validated or shared, so building it
/// cannot fail and copies nothing large.
fn build_request(
    method: Method,
    uri: Uri,
    host: HeaderValue,
    key: Option<HeaderValue>,
    prefer: Option<HeaderValue>,
    body: Bytes,
) -> Request<Full<Bytes>> {
    let has_body = !body.is_empty();
    let mut request = Request::new(Full::new(body));
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    let headers = request.headers_mut();
    headers.insert(HOST, host);
    if has_body {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    if let Some(key) = key {
        headers.insert(IDEMPOTENCY_KEY, key);
    }
    if let Some(prefer) = prefer {
        headers.insert(PREFER, prefer);
    }
    request
}

/// Sends one `POST {path}` with a JSON `body` and `Idempotency-Key: {idempotency_key}` and
/// returns the status code and the body as text, whatever the status. For the calls around a
/// run, such as creating a campaign; it opens a connection of its own.
///
/// Transport failures are retried on a fresh connection (the idempotency key makes that safe)
/// up to [`TRANSPORT_RETRIES_MAX`] times, each try bounded by [`REQUEST_TIMEOUT`].
pub async fn post_json(
    target: &Target,
    path: &str,
    idempotency_key: &str,
    body: &str,
) -> Result<(u16, String), LoadgenError> {
    let key = HeaderValue::from_str(idempotency_key).map_err(|e| LoadgenError::Request {
        target: target.url.clone(),
        method: "POST",
        path: path.to_owned(),
        message: format!("invalid idempotency key: {e}"),
    })?;
    let body = Bytes::copy_from_slice(body.as_bytes());
    request_once(target, Method::POST, path, Some(key), body).await
}

/// Sends one `GET {path}` and returns the status code and the body as text, whatever the
/// status; retried like [`post_json`] (a GET is safe to repeat).
pub async fn get_json(target: &Target, path: &str) -> Result<(u16, String), LoadgenError> {
    request_once(target, Method::GET, path, None, Bytes::new()).await
}

async fn request_once(
    target: &Target,
    method: Method,
    path: &str,
    key: Option<HeaderValue>,
    body: Bytes,
) -> Result<(u16, String), LoadgenError> {
    let method_name = if method == Method::GET { "GET" } else { "POST" };
    let error = |message: String| LoadgenError::Request {
        target: target.url.clone(),
        method: method_name,
        path: path.to_owned(),
        message,
    };
    let uri = Uri::try_from(path).map_err(|e| error(format!("invalid path: {e}")))?;
    let mut last_failure = String::new();
    for _ in 0..=TRANSPORT_RETRIES_MAX {
        let request = build_request(
            method.clone(),
            uri.clone(),
            target.host.clone(),
            key.clone(),
            None,
            body.clone(),
        );
        let once = async {
            let mut conn = connect(target.addr).await.map_err(|e| e.message)?;
            let (status, bytes) = exchange(&mut conn.sender, request).await?;
            Ok::<_, String>((
                status.as_u16(),
                String::from_utf8_lossy(&bytes).into_owned(),
            ))
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, once).await {
            Ok(Ok(answer)) => return Ok(answer),
            Ok(Err(failure)) => last_failure = failure,
            Err(_) => last_failure = format!("no answer within {REQUEST_TIMEOUT:?}"),
        }
    }
    Err(error(last_failure))
}

/// Why one attempt got no answer; the connection it was made on is dropped either way.
#[derive(Debug)]
struct AttemptError {
    /// What went wrong, for the report.
    message: String,
    /// The server had closed an idle keep-alive connection before this request was sent: not
    /// a failure, the request just goes out again on a fresh connection.
    stale: bool,
}

impl AttemptError {
    fn failed(message: String) -> Self {
        Self {
            message,
            stale: false,
        }
    }
}

/// A keep-alive HTTP/1.1 connection; its I/O runs in a task of its own that ends when the
/// sender is dropped or the connection fails.
#[derive(Debug)]
struct Conn {
    sender: SendRequest<Full<Bytes>>,
    /// Requests answered on this connection.
    answered: u64,
}

/// A TCP connection with Nagle off, or why not, within [`CONNECT_TIMEOUT`].
async fn connect_tcp(target: SocketAddr) -> std::io::Result<TcpStream> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target))
        .await
        .map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no connection within {CONNECT_TIMEOUT:?}"),
            )
        })??;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// A fresh HTTP/1.1 connection, its I/O driven by a task of its own. (The HTTP/1.1 handshake
/// sends nothing, so it cannot hang.)
async fn connect(target: SocketAddr) -> Result<Conn, AttemptError> {
    let stream = connect_tcp(target)
        .await
        .map_err(|e| AttemptError::failed(format!("connect to {target} failed: {e}")))?;
    let (sender, driver) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| AttemptError::failed(format!("HTTP handshake failed: {e}")))?;
    tokio::spawn(async move {
        // A connection error reaches the client through its next request; nothing to do here.
        let _ = driver.await;
    });
    Ok(Conn {
        sender,
        answered: 0,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    async fn refused(url: &str) -> String {
        Target::resolve(url).await.unwrap_err().to_string()
    }

    #[tokio::test]
    async fn targets_are_plain_http_urls_of_an_edge() {
        let target = Target::resolve("http://127.0.0.1:8080").await.unwrap();
        assert_eq!(target.url, "http://127.0.0.1:8080");
        assert_eq!(target.addr, "127.0.0.1:8080".parse().unwrap());
        let target = Target::resolve("http://127.0.0.1/").await.unwrap();
        assert_eq!(target.addr.port(), 80);
        let target = Target::resolve("http://[::1]:9000").await.unwrap();
        assert_eq!(target.addr, "[::1]:9000".parse().unwrap());
        assert_eq!(target.host, "[::1]:9000");
        let target = Target::resolve("http://localhost:8080").await.unwrap();
        assert!(target.addr.ip().is_loopback());
        assert_eq!(target.host, "localhost:8080");
    }

    #[tokio::test]
    async fn bad_targets_say_what_to_give_instead() {
        assert!(refused("https://127.0.0.1:8080")
            .await
            .contains("https is not supported"));
        assert!(refused("127.0.0.1:8080")
            .await
            .contains("must start with http://"));
        assert!(refused("http://127.0.0.1:8080/v1/campaigns")
            .await
            .contains("give only the scheme, host and port"));
        assert!(refused("http://").await.contains("give only"));
        assert!(refused("http://127.0.0.1:99999")
            .await
            .contains("from 1 to 65535"));
        assert!(refused("http://127.0.0.1:0")
            .await
            .contains("from 1 to 65535"));
        assert!(refused("http://a b:80")
            .await
            .contains("not a valid host and port"));
    }
}
