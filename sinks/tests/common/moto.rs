//! moto's server (PyPI `moto[server]`), started by the test on a free port: SES without
//! AWS. A missing moto fails the test with how to install it; it is never a skip.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long moto may take to answer after it was started.
const START_WAIT_MS_MAX: u64 = 30_000;

/// A running moto server, stopped on drop.
pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
}

/// One message moto's SES accepted as raw MIME.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct SentRaw {
    /// SES's MessageId.
    pub id: String,
    /// The MIME as sent.
    pub raw_data: String,
}

impl Moto {
    pub fn start() -> Moto {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port()
            .to_string();
        let args = ["-H", "127.0.0.1", "-p", &port];
        // `moto_server` on PATH, else the module through python3.
        let child = Command::new("moto_server")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .or_else(|_| {
                Command::new("python3")
                    .args(["-m", "moto.server"])
                    .args(args)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
            });
        let mut child = child.unwrap_or_else(|e| panic!("{}", missing(&e.to_string())));
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("{}", missing(&format!("moto exited at start: {status}")));
            }
            let answered = probe::http_ok(&format!("{url}/moto-api/data.json"));
            if answered {
                return Moto { child, url };
            }
            if started.elapsed() > Duration::from_millis(START_WAIT_MS_MAX) {
                let _ = child.kill();
                panic!("{}", missing("moto did not answer within 30 s"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Every raw message moto's SES accepted, in the order sent, from moto's model dump
    /// (`/moto-api/data.json`, `ses.RawMessage`): the only place moto shows sesv2's raw
    /// sends.
    pub async fn sent_raw(&self) -> Vec<SentRaw> {
        let data: serde_json::Value = reqwest::get(format!("{}/moto-api/data.json", self.url))
            .await
            .expect("moto answers")
            .json()
            .await
            .expect("moto's data is JSON");
        serde_json::from_value(data["ses"]["RawMessage"].clone()).expect("raw messages")
    }
}

fn missing(why: &str) -> String {
    format!(
        "cannot start moto ({why}): install it with `python3 -m pip install 'moto[server]'` \
         (scripts/test.sh does), so that `moto_server` is on PATH"
    )
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A tiny blocking probe without reqwest's blocking feature: a raw HTTP/1.0 GET.
mod probe {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Duration;

    pub fn http_ok(url: &str) -> bool {
        let Some(rest) = url.strip_prefix("http://") else {
            return false;
        };
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        let Ok(mut stream) = TcpStream::connect(host) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let request = format!("GET /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n");
        if stream.write_all(request.as_bytes()).is_err() {
            return false;
        }
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).is_ok() && head.ends_with(b"200")
    }
}
