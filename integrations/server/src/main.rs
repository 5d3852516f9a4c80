//! `cargo run --release -p livecore-server [-- --bind ADDR --db PATH]`: the reference
//! live-query server with the demo tables and tokens. SIGTERM or Ctrl-C shuts it down
//! gracefully: every client is closed with code 1001 and a reason.

use std::net::SocketAddr;

use livecore_server::{RunningServer, ServerConfig};

fn usage() -> ! {
    eprintln!("usage: livecore-server [--bind 127.0.0.1:8080] [--db livecore-server.db]");
    std::process::exit(2);
}

#[tokio::main]
async fn main() {
    let mut bind: SocketAddr = "127.0.0.1:8080".parse().expect("a valid default address");
    let mut db = String::from("livecore-server.db");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--bind", Some(value)) => bind = value.parse().unwrap_or_else(|_| usage()),
            ("--db", Some(value)) => db = value,
            _ => usage(),
        }
    }
    let server = match RunningServer::start(ServerConfig::demo(bind, db)).await {
        Ok(server) => server,
        Err(error) => {
            eprintln!("livecore-server: {error}");
            std::process::exit(1);
        }
    };
    // Tests read this line to find the port when started with --bind 127.0.0.1:0.
    println!("livecore-server listening on http://{}", server.addr());
    println!("demo tokens: alice-token, bob-token, admin-token");
    wait_for_signal().await;
    let report = server.shutdown().await;
    println!(
        "livecore-server stopped: {} clients closed, {} dropped after the timeout",
        report.closed_by_host, report.forced
    );
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate()).expect("a SIGTERM handler");
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
