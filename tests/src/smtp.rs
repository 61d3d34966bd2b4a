//! A real SMTP server for the notice tests: `tools/smtp/sink.py` (aiosmtpd, pinned in
//! `tools/smtp/requirements.txt`, installed into `tools/smtp/.venv` by `make test`), run as a
//! child process on a free port; every mail it accepts is one JSON line in a file.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A mail the server accepted.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Mail {
    /// `<…>`.
    pub message_id: Option<String>,
    /// The envelope sender.
    pub mail_from: String,
    /// The envelope recipients.
    pub rcpt_tos: Vec<String>,
    /// The subject, decoded.
    pub subject: String,
    /// The text body, decoded.
    pub body: String,
}

/// A running SMTP server.
pub struct SmtpSink {
    /// Its port.
    pub port: u16,
    file: PathBuf,
    child: Child,
}

fn python() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let venv = root.join("tools/smtp/.venv/bin/python");
    assert!(venv.exists(), "install the SMTP sink first (make smtp-tools): {}", venv.display());
    venv
}

impl SmtpSink {
    /// Starts the server on a free port and waits until it listens.
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let file = std::env::temp_dir().join(format!("huiyin-mails-{}.jsonl", uuid::Uuid::new_v4().simple()));
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tools/smtp/sink.py");
        let mut child = Command::new(python())
            .arg(script)
            .args(["127.0.0.1", &port.to_string()])
            .arg(&file)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the SMTP sink starts");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready", "the SMTP sink did not start");
        Self { port, file, child }
    }

    /// Every mail accepted so far.
    pub fn mails(&self) -> Vec<Mail> {
        std::fs::read_to_string(&self.file)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("a mail line"))
            .collect()
    }

    /// Waits until at least `n` mails arrived, or panics after `secs` seconds.
    pub async fn wait_for(&self, n: usize, secs: u64) -> Vec<Mail> {
        for _ in 0..secs * 20 {
            let m = self.mails();
            if m.len() >= n {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{n} mail(s) not delivered within {secs} s; got {}", self.mails().len());
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.file);
    }
}
