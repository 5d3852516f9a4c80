//! The page in a real browser: headless Chromium (Debian `chromium`; ci.sh installs it)
//! driven through the DevTools protocol over a WebSocket. A person's steps: connect with a
//! token, subscribe, see the initial rows, see a row written by someone else arrive and
//! another change in place, write a row with the form, and see markup in data shown as
//! text. Every wait is on a condition in the DOM, with a bound.

mod common;

use common::devtools::{Browser, Page};
use common::*;
use serde_json::json;

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
    let browser = Browser::launch(temp_dir());
    // A crafted link: the page reads nothing from its URL, so it neither takes the token
    // nor connects on its own.
    let link = format!(
        "http://{}/?token=bob-token&autorun=1&sql=SELECT%20*%20FROM%20messages",
        server.addr()
    );
    let mut page = Page::open(&browser, &link).await;
    page.wait_for(
        "the form",
        "document.readyState === 'complete' && !!document.querySelector('#connect')",
    )
    .await;
    assert_eq!(
        page.eval("[document.body.dataset.phase, document.querySelector('#token').value, document.querySelector('#sql').value]")
            .await,
        json!(["disconnected", "alice-token", "SELECT * FROM messages WHERE room = 1"])
    );

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

    // Someone else edits a row that stays in room 1: it changes in place (the same row
    // element, at the same position), showing the new value.
    page.eval(
        "document.querySelector('#rows tbody tr[data-key=\"3\"]').dataset.probe = 'kept'; true",
    )
    .await;
    server
        .write_as(
            "bob",
            vec![json!({"op": "update", "table": "messages", "id": 3,
                        "values": {"body": "second, edited"}})],
        )
        .await;
    page.wait_for(
        "the row changed in place",
        "[...document.querySelectorAll('#rows tbody td')].some(td => td.textContent === 'second, edited')",
    )
    .await;
    assert_eq!(
        page.eval(ROWS).await,
        json!([
            ["1", "1", "first"],
            ["3", "1", "second, edited"],
            ["4", "1", markup]
        ])
    );
    assert_eq!(
        page.eval("document.querySelector('#rows tbody tr[data-key=\"3\"]').dataset.probe")
            .await,
        json!("kept")
    );

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
            ["3", "1", "second, edited"],
            ["4", "1", markup],
            ["5", "1", "from the form"]
        ])
    );
    let (_, rows) = server.server().read_table("messages").await.unwrap();
    assert_eq!(rows.len(), 5);
}
