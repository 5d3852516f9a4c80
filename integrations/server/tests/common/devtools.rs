//! Headless Chromium (Debian `chromium`) driven through the DevTools protocol over a
//! WebSocket: the browser test uses it, and so does `examples/screenshot.rs` (which
//! includes this file), so the page is driven the way a person uses it — typing into the
//! form and clicking — never through special URLs.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The bound on every wait on the browser: generous, since CI machines are shared.
pub const BROWSER_WAIT: Duration = Duration::from_secs(30);

/// Headless Chromium with a fresh profile in `profile`, killed (and the profile removed)
/// on drop.
pub struct Browser {
    child: Child,
    profile: PathBuf,
    devtools: String,
}

impl Browser {
    /// Starts Chromium (`LIVECORE_CHROMIUM`, or `chromium` on the path) with its DevTools
    /// endpoint on a free loopback port, and waits (bounded) until it listens.
    pub fn launch(profile: PathBuf) -> Browser {
        let binary = std::env::var("LIVECORE_CHROMIUM").unwrap_or_else(|_| "chromium".into());
        let mut child = Command::new(&binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                "--window-size=1280,900",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            // Chromium keeps its singleton socket in a directory of its own under TMPDIR,
            // which a killed browser leaves behind: under the profile, it goes with it.
            .env("TMPDIR", &profile)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| {
                panic!("cannot start {binary:?} ({error}): install Debian's chromium (ci.sh does)")
            });
        // Chromium prints its DevTools address on stderr once it listens.
        let stderr = child.stderr.take().unwrap();
        let (found, address) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(at) = line.find("ws://") {
                    let _ = found.send(line[at..].trim().to_string());
                }
            }
        });
        let devtools = address
            .recv_timeout(BROWSER_WAIT)
            .expect("Chromium prints its DevTools address");
        Browser {
            child,
            profile,
            devtools,
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// A minimal DevTools protocol client: commands on one page session, answers matched by id.
pub struct Page {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    session: String,
    next_id: u64,
}

impl Page {
    /// Opens `url` in a new tab and attaches to it.
    pub async fn open(browser: &Browser, url: &str) -> Page {
        let (ws, _) = tokio_tungstenite::connect_async(browser.devtools.as_str())
            .await
            .expect("DevTools connects");
        let mut page = Page {
            ws,
            session: String::new(),
            next_id: 0,
        };
        let target = page
            .command("Target.createTarget", json!({"url": url}))
            .await;
        let attached = page
            .command(
                "Target.attachToTarget",
                json!({"targetId": target["targetId"], "flatten": true}),
            )
            .await;
        page.session = attached["sessionId"].as_str().unwrap().to_string();
        page
    }

    /// Sends one command and returns its result (panics on a protocol error).
    pub async fn command(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if !self.session.is_empty() {
            message["sessionId"] = json!(self.session);
        }
        self.ws
            .send(Message::text(message.to_string()))
            .await
            .unwrap();
        loop {
            let next = tokio::time::timeout(BROWSER_WAIT, self.ws.next())
                .await
                .expect("DevTools answers in time")
                .expect("DevTools open")
                .expect("no error");
            if let Message::Text(text) = next {
                let answer: Value = serde_json::from_str(&text).unwrap();
                if answer["id"] == json!(id) {
                    assert!(answer["error"].is_null(), "{method}: {answer}");
                    return answer["result"].clone();
                }
            }
        }
    }

    /// Evaluates a JavaScript expression in the page and returns its value.
    pub async fn eval(&mut self, expression: &str) -> Value {
        let result = self
            .command(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true}),
            )
            .await;
        assert!(
            result["exceptionDetails"].is_null(),
            "{expression}: {result}"
        );
        result["result"]["value"].clone()
    }

    /// Waits until `expression` is true in the page, polling within the bound.
    pub async fn wait_for(&mut self, what: &str, expression: &str) {
        let deadline = tokio::time::Instant::now() + BROWSER_WAIT;
        while self.eval(expression).await != json!(true) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the page never showed {what}; status: {}, log: {}",
                self.eval("document.querySelector('#status').textContent")
                    .await,
                self.eval("document.querySelector('#log').innerText").await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sets a form field's value as typing would (an `input` event follows).
    pub async fn type_into(&mut self, selector: &str, text: &str) {
        let expression = format!(
            "(() => {{ const field = document.querySelector({selector}); field.value = {text}; \
             field.dispatchEvent(new Event('input', {{bubbles: true}})); return true; }})()",
            selector = json!(selector),
            text = json!(text),
        );
        assert_eq!(self.eval(&expression).await, json!(true));
    }

    /// Clicks an element.
    pub async fn click(&mut self, selector: &str) {
        let expression = format!(
            "(() => {{ document.querySelector({}).click(); return true; }})()",
            json!(selector)
        );
        assert_eq!(self.eval(&expression).await, json!(true));
    }
}
