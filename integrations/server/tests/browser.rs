//! The page in a real browser: headless Chromium (Debian `chromium`; ci.sh installs it)
//! driven through the DevTools protocol over a WebSocket. A person's steps: connect with a
//! token, subscribe, see the initial rows, see a row written by someone else arrive, write
//! a row with the form, and see markup in data shown as text. Every wait is on a
//! condition in the DOM, with a bound.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// Headless Chromium with a fresh profile, killed (and its profile removed) on drop.
struct Browser {
    child: Child,
    profile: std::path::PathBuf,
    devtools: String,
}

impl Browser {
    fn launch() -> Browser {
        let binary = std::env::var("LIVECORE_CHROMIUM").unwrap_or_else(|_| "chromium".into());
        let profile = temp_dir();
        let mut child = Command::new(&binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                "--window-size=1280,900",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
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
            .recv_timeout(WAIT)
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
struct Page {
    ws: Ws,
    session: String,
    next_id: u64,
}

impl Page {
    async fn open(browser: &Browser, url: &str) -> Page {
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

    async fn command(&mut self, method: &str, params: Value) -> Value {
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
            let next = tokio::time::timeout(WAIT, self.ws.next())
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
    async fn eval(&mut self, expression: &str) -> Value {
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
    async fn wait_for(&mut self, what: &str, expression: &str) {
        let deadline = tokio::time::Instant::now() + WAIT;
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
}

/// The texts of the rows the page shows (rows on their way out excluded), cell by cell.
const ROWS: &str = "[...document.querySelectorAll('#rows tbody tr:not([data-leaving])')]
    .map(tr => [...tr.children].map(td => td.textContent))";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_initial_rows_then_live_writes_as_text() {
    let server = start(|_| {}).await;
    server
        .write(vec![
            insert(1, "first"),
            insert(2, "other room"),
            insert(1, "second"),
        ])
        .await;
    let browser = Browser::launch();
    let mut page = Page::open(&browser, &format!("http://{}/", server.addr())).await;
    page.wait_for(
        "the form",
        "document.readyState === 'complete' && !!document.querySelector('#connect')",
    )
    .await;

    page.eval("document.querySelector('#token').value = 'alice-token'; document.querySelector('#connect').click(); true")
        .await;
    page.wait_for(
        "the signed-in state",
        "document.body.dataset.phase === 'connected'",
    )
    .await;
    page.eval(
        "document.querySelector('#sql').value = 'SELECT id, room, body FROM messages WHERE room = 1';
         document.querySelector('#subscribe').click(); true",
    )
    .await;
    page.wait_for("the initial rows", "document.body.dataset.phase === 'live' && document.querySelectorAll('#rows tbody tr').length === 2")
        .await;
    assert_eq!(
        page.eval(ROWS).await,
        json!([["1", "1", "first"], ["3", "1", "second"]])
    );
    assert_eq!(
        page.eval("[...document.querySelectorAll('#rows thead th')].map(th => th.textContent)")
            .await,
        json!(["id", "room", "body"])
    );

    // Someone else writes: markup in the data must show as text, not become elements.
    let markup = "<img src=x onerror=\"document.title='owned'\"><b>bold</b>";
    server.write_as("bob", vec![insert(1, markup)]).await;
    page.wait_for(
        "the row written afterwards",
        "document.querySelectorAll('#rows tbody tr').length === 3",
    )
    .await;
    assert_eq!(
        page.eval(ROWS).await,
        json!([
            ["1", "1", "first"],
            ["3", "1", "second"],
            ["4", "1", markup]
        ])
    );
    assert_eq!(
        page.eval("document.querySelectorAll('#rows img, #rows b').length")
            .await,
        json!(0)
    );
    assert_ne!(page.eval("document.title").await, json!("owned"));

    // The write form: an insert in room 1 enters, moving a row to room 2 makes it leave.
    page.eval(
        "document.querySelector('#write-table').value = 'messages';
         document.querySelector('#write-table').dispatchEvent(new Event('change'));
         document.querySelector('#write-op').value = 'insert';
         document.querySelector('#field-room').value = '1';
         document.querySelector('#field-body').value = 'from the form';
         document.querySelector('#write').click(); true",
    )
    .await;
    page.wait_for("the row written with the form", "[...document.querySelectorAll('#rows tbody td')].some(td => td.textContent === 'from the form')")
        .await;
    page.eval(
        "document.querySelector('#write-op').value = 'update';
         document.querySelector('#write-op').dispatchEvent(new Event('change'));
         document.querySelector('#write-id').value = '1';
         document.querySelector('#field-room').value = '2';
         document.querySelector('#field-body').value = '';
         document.querySelector('#write').click(); true",
    )
    .await;
    page.wait_for("the moved row leaving", "document.querySelectorAll('#rows tbody tr:not([data-leaving])').length === 3 && !document.querySelector('#rows tbody tr[data-key=\"1\"]:not([data-leaving])')")
        .await;
    assert_eq!(
        page.eval(ROWS).await,
        json!([
            ["3", "1", "second"],
            ["4", "1", markup],
            ["5", "1", "from the form"]
        ])
    );
    let (_, rows) = server.server().read_table("messages").await.unwrap();
    assert_eq!(rows.len(), 5);
}
