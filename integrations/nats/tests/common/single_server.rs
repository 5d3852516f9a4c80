//! One extra nats-server with JetStream on a free loopback port, for the tests of
//! credentials and TLS that need a server configured unlike the cluster. It lives in a
//! directory of its own under the cluster's, and is stopped (SIGKILL, then reaped) when the
//! handle drops, also when the test panics.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How the server authenticates clients and whether it speaks TLS.
pub struct ServerSetup {
    /// Lines of the server's `authorization { }` block (none: open).
    pub authorization: Option<String>,
    /// Certificate and key files: the server requires TLS.
    pub tls: Option<(PathBuf, PathBuf)>,
}

/// A running server.
pub struct SingleServer {
    child: Child,
    /// Its client port on 127.0.0.1.
    pub port: u16,
    /// Its directory (configuration, store, log).
    pub dir: PathBuf,
}

impl Drop for SingleServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A directory for one test's files, under the cluster's temporary directory.
pub fn scratch_dir(name: &str) -> PathBuf {
    let base = std::env::var("LIVECORE_NATS_DIR").expect("LIVECORE_NATS_DIR is not set: run ci.sh");
    let dir = Path::new(&base).join(format!("{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A port the kernel says is free now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl SingleServer {
    /// Starts the server and waits (bounded) until its health check says JetStream is up.
    pub fn start(name: &str, setup: ServerSetup) -> SingleServer {
        let dir = scratch_dir(name);
        let (port, http) = (free_port(), free_port());
        let mut conf = format!(
            "listen: 127.0.0.1:{port}\nhttp: 127.0.0.1:{http}\n\
             jetstream {{\n  store_dir: \"{}\"\n  max_memory_store: 64MB\n  max_file_store: 256MB\n}}\n",
            dir.join("store").display()
        );
        if let Some(lines) = &setup.authorization {
            conf.push_str(&format!("authorization {{\n{lines}\n}}\n"));
        }
        if let Some((cert, key)) = &setup.tls {
            conf.push_str(&format!(
                "tls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n}}\n",
                cert.display(),
                key.display()
            ));
        }
        let conf_path = dir.join("server.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new("nats-server")
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("server.log")).unwrap())
            .spawn()
            .expect("nats-server runs");
        let mut server = SingleServer { child, port, dir };
        for _ in 0..200 {
            if let Some(status) = server.child.try_wait().unwrap() {
                let log =
                    std::fs::read_to_string(server.dir.join("server.log")).unwrap_or_default();
                panic!("nats-server exited with {status}: {log}");
            }
            if healthy(http) {
                return server;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the single server on port {port} did not become healthy");
    }

    /// Its URL with the scheme given (`nats` or `tls`).
    pub fn url(&self, scheme: &str) -> String {
        format!("{scheme}://127.0.0.1:{}", self.port)
    }
}

fn healthy(http: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", http)) else {
        return false;
    };
    let _ = stream.write_all(b"GET /healthz HTTP/1.0\r\n\r\n");
    let mut body = String::new();
    let _ = stream.read_to_string(&mut body);
    body.contains("\"ok\"")
}

/// Runs openssl with these arguments in `dir`, failing the test with its output if it fails.
fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command runs (ci.sh installs it when missing)");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Throwaway certificates made at test time.
pub struct Certificates {
    /// The CA that signed the server certificate (PEM).
    pub ca: PathBuf,
    /// Another CA, which signed nothing the server holds (PEM).
    pub other_ca: PathBuf,
    /// The server certificate, for IP 127.0.0.1 (PEM).
    pub server_cert: PathBuf,
    /// Its key (PEM).
    pub server_key: PathBuf,
}

/// Makes two self-signed CAs (P-256, valid one day) and a server certificate for
/// 127.0.0.1 signed by the first.
pub fn make_certificates(dir: &Path) -> Certificates {
    for ca in ["ca", "other-ca"] {
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "1",
                "-subj",
                &format!("/CN=livecore test {ca}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.pem"),
            ],
        );
    }
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "server.ext",
            "-out",
            "server.pem",
        ],
    );
    Certificates {
        ca: dir.join("ca.pem"),
        other_ca: dir.join("other-ca.pem"),
        server_cert: dir.join("server.pem"),
        server_key: dir.join("server.key"),
    }
}
