//! The access log: one line per request, in common log format plus the
//! duration in seconds, the app and the pid of the instance that served it:
//!
//! ```text
//! 127.0.0.1 - - [25/Nov/2026:05:00:00 +0000] "GET /hello.php HTTP/1.1" 200 13 0.000912 app=php pid=4242
//! ```
//!
//! Lines are handed to a writer thread, so a slow terminal or disk never
//! stalls a request; the thread writes what has come every
//! [`FLUSH_EVERY`] at most, in one write, and everything at the stop
//! ([`finish`]).

use std::io::{self, BufWriter, Write};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::config;

/// Where access-log lines go. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AccessLog {
    tx: Option<mpsc::Sender<String>>,
}

impl AccessLog {
    /// Opens the configured destination and starts its writer thread.
    pub fn open(destination: &config::AccessLogTarget) -> io::Result<AccessLog> {
        let out: Box<dyn Write + Send> = match destination {
            config::AccessLogTarget::Off => return Ok(AccessLog { tx: None }),
            config::AccessLogTarget::Stdout => Box::new(io::stdout()),
            config::AccessLogTarget::File(path) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            ),
        };
        let (tx, rx) = mpsc::channel::<String>();
        let writer = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || write_lines(rx, out))?;
        let mut writers = WRITERS.lock().unwrap_or_else(|p| p.into_inner());
        writers.retain(|w| !w.is_finished());
        writers.push(writer);
        Ok(AccessLog { tx: Some(tx) })
    }

    /// Starts the entry of one request (`None` when logging is off).
    pub fn entry(
        &self,
        remote: IpAddr,
        method: &http::Method,
        uri: &http::Uri,
        version: http::Version,
    ) -> Option<AccessEntry> {
        let tx = self.tx.clone()?;
        Some(AccessEntry {
            tx,
            remote,
            time: SystemTime::now(),
            started: Instant::now(),
            // Origin form even for HTTP/2 (whose URIs carry scheme and authority).
            request_line: format!(
                "{method} {} {version:?}",
                uri.path_and_query().map_or("/", |p| p.as_str())
            ),
            status: 0,
            app: None,
            pid: None,
        })
    }
}

/// After writing what it had, the writer thread waits this long before it
/// looks again. Lines sent meanwhile wake nobody (the thread is not parked
/// on the channel): a busy site costs one wake-up and one write(2) per
/// interval instead of a wake-up per request (nginx's `access_log ...
/// buffer= flush=` does the same). A line reaches the file at most this
/// late; [`finish`] writes what is left when the gateway stops.
const FLUSH_EVERY: Duration = Duration::from_millis(50);

/// How long an idle writer waits for a line before it looks whether the
/// gateway is stopping.
const IDLE_LOOK: Duration = Duration::from_millis(500);

/// The writer threads (one per access log a start or a reload opened).
static WRITERS: Mutex<Vec<std::thread::JoinHandle<()>>> = Mutex::new(Vec::new());
/// Set by [`finish`]: write what is left and end.
static FINISHING: AtomicBool = AtomicBool::new(false);

fn write_lines(rx: mpsc::Receiver<String>, out: Box<dyn Write + Send>) {
    let mut out = BufWriter::with_capacity(64 * 1024, out);
    loop {
        match rx.recv_timeout(IDLE_LOOK) {
            Ok(line) => {
                let _ = out.write_all(line.as_bytes());
                while let Ok(line) = rx.try_recv() {
                    let _ = out.write_all(line.as_bytes());
                }
                let _ = out.flush();
                if !FINISHING.load(Ordering::Acquire) {
                    std::thread::park_timeout(FLUSH_EVERY);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) if !FINISHING.load(Ordering::Acquire) => {}
            Err(_) => break,
        }
    }
    let _ = out.flush();
}

/// At the gateway's stop, once no request runs any more: every writer
/// writes what it holds and ends, and this waits for them (the process
/// would otherwise end with the last lines unwritten).
pub fn finish() {
    FINISHING.store(true, Ordering::Release);
    let writers = std::mem::take(&mut *WRITERS.lock().unwrap_or_else(|p| p.into_inner()));
    for writer in writers {
        writer.thread().unpark();
        let _ = writer.join();
    }
}

/// The access-log line of one request, completed as the response goes out.
#[derive(Debug)]
pub struct AccessEntry {
    tx: mpsc::Sender<String>,
    remote: IpAddr,
    time: SystemTime,
    started: Instant,
    request_line: String,
    status: u16,
    app: Option<Arc<str>>,
    pid: Option<u32>,
}

impl AccessEntry {
    pub fn set_status(&mut self, status: http::StatusCode) {
        self.status = status.as_u16();
    }

    pub fn set_app(&mut self, app: Arc<str>, pid: Option<u32>) {
        self.app = Some(app);
        self.pid = pid;
    }

    /// Writes the line; `sent` is the number of body bytes sent. Made on
    /// the request's thread, so it is built in one buffer without float
    /// formatting (the elapsed time as seconds and microseconds) and without
    /// escaping a request line that needs none: a formatted line cost 10 000
    /// instructions, a sixth of a hello.php request in the gateway.
    pub fn write(self, sent: u64) {
        use std::fmt::Write as _;
        let elapsed = self.started.elapsed();
        let mut line = String::with_capacity(self.request_line.len() + 128);
        let _ = write!(line, "{} - - [", self.remote);
        push_clf_time(&mut line, self.time);
        line.push_str("] \"");
        push_escaped(&mut line, &self.request_line);
        let _ = write!(
            line,
            "\" {} {} {}.{:06} app={} pid=",
            self.status,
            sent,
            elapsed.as_secs(),
            elapsed.subsec_micros(),
            self.app.as_deref().unwrap_or("-"),
        );
        match self.pid {
            Some(pid) => {
                let _ = write!(line, "{pid}");
            }
            None => line.push('-'),
        }
        line.push('\n');
        let _ = self.tx.send(line);
    }
}

/// `text` as `str::escape_debug` gives it, without going through it when no
/// character needs escaping (printable ASCII but quotes and backslash).
fn push_escaped(out: &mut String, text: &str) {
    use std::fmt::Write as _;
    let plain = text
        .bytes()
        .all(|b| (0x20..0x7f).contains(&b) && !matches!(b, b'"' | b'\'' | b'\\'));
    if plain {
        out.push_str(text);
    } else {
        let _ = write!(out, "{}", text.escape_debug());
    }
}

/// `25/Nov/2026:05:00:00 +0000` (UTC).
#[cfg(test)]
fn clf_time(time: SystemTime) -> String {
    let mut out = String::new();
    push_clf_time(&mut out, time);
    out
}

/// Appends [`clf_time`]'s text.
fn push_clf_time(out: &mut String, time: SystemTime) {
    use std::fmt::Write as _;
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    let _ = write!(
        out,
        "{day:02}/{}/{year:04}:{:02}:{:02}:{:02} +0000",
        MONTHS[(month - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
}

/// Days since 1970-01-01 → (year, month 1..=12, day 1..=31), proleptic
/// Gregorian calendar (the well-known era-based conversion).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates_in_common_log_format() {
        assert_eq!(clf_time(UNIX_EPOCH), "01/Jan/1970:00:00:00 +0000");
        // 2026-11-25T05:06:07Z
        let t = UNIX_EPOCH + Duration::from_secs(1_795_583_167);
        assert_eq!(clf_time(t), "25/Nov/2026:05:06:07 +0000");
        // A leap day.
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(clf_time(t), "29/Feb/2000:00:00:00 +0000");
    }

    #[test]
    fn request_lines_are_escaped_as_escape_debug_does() {
        for text in [
            "GET /a?b=c HTTP/1.1",
            "GET /\"quoted\" HTTP/1.1",
            "GET /it's HTTP/1.1",
            "GET /back\\slash HTTP/1.1",
            "GET /tab\there HTTP/1.1",
            "GET /caf\u{e9} HTTP/1.1",
            "GET /bell\u{7} HTTP/1.1",
            "",
        ] {
            let mut out = String::new();
            push_escaped(&mut out, text);
            assert_eq!(out, text.escape_debug().to_string(), "{text:?}");
        }
    }
}
