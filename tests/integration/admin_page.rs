//! Issue 14, the admin page (`GET /` on the admin listener), in a real
//! browser: headless Chromium (Debian's `chromium`, installed by
//! tests/run.sh) renders it from `/status`, and a mouse click on "Recycle",
//! sent over the DevTools protocol, replaces the app's processes.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::admin::admin_addr;
use crate::util::*;

/// Chromium's flags for a test run: no sandbox (containers), nothing that
/// reaches the network on its own, a profile of its own.
fn chromium(profile: &Path) -> Command {
    let mut command = Command::new("chromium");
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--window-size=1200,800",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    command
}

/// Runs Chromium once to the end (`--dump-dom`, `--screenshot`), failing
/// loudly when it is not installed.
fn chromium_output(profile: &Path, args: &[String]) -> String {
    let out = chromium(profile)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("chromium: {e} (tests/run.sh installs Debian's chromium)"));
    assert!(out.status.success(), "chromium failed: {:?}", out.status);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The app's processes as `/status` lists them, once `count` are idle.
fn idle_pids(admin: SocketAddr, count: usize) -> Vec<u64> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = request(admin, "GET", "/status", &[], b"").json();
        let pids: Vec<u64> = status["apps"][0]["processes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["pid"].as_u64().unwrap(), p["state"] == "idle"))
            .filter(|(_, idle)| *idle)
            .map(|(pid, _)| pid)
            .collect();
        if pids.len() == count && status["apps"][0]["instances"]["total"] == count {
            return pids;
        }
        assert!(Instant::now() < deadline, "never {count} idle: {status}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_admin_page_lists_the_apps_and_its_recycle_button_replaces_the_processes() {
    let config = format!(
        "{}\n[admin]\nlisten = \"127.0.0.1:0\"\n",
        php_config("max_instances = 2\nmin_instances = 2")
    );
    let gw = Gateway::start(&config);
    let admin = admin_addr(&gw);
    assert_eq!(gw.get("/index.php").status, 200);
    let before = idle_pids(admin, 2);
    let page = request(admin, "GET", "/", &[], b"");
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let url = format!("http://{admin}/");
    let profile = tempfile::tempdir().unwrap();

    // The page as rendered once its script ran (virtual time: the fetch
    // and the first render happen before the dump).
    let dom = chromium_output(
        profile.path(),
        &[
            "--virtual-time-budget=3000".to_string(),
            "--dump-dom".to_string(),
            url.clone(),
        ],
    );
    assert!(dom.contains("data-app=\"php\""), "{dom}");
    for pid in &before {
        assert!(
            dom.contains(&format!("<td class=\"pid\">{pid}</td>")),
            "{pid}: {dom}"
        );
    }
    assert!(dom.contains("data-action=\"recycle\""), "{dom}");

    // Pressed with the mouse, in a browser that stays up.
    let mut browser = Browser::open(profile.path(), &url);
    browser.wait_for("document.body.dataset.loaded === '1'");
    let button =
        "document.querySelector('section[data-app=\"php\"] button[data-action=\"recycle\"]')";
    let center = browser.evaluate(&format!(
        "(() => {{ const r = {button}.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; }})()"
    ));
    browser.click(center[0].as_f64().unwrap(), center[1].as_f64().unwrap());
    assert!(
        gw.wait_for_log(
            "recycle asked on the admin listener",
            Duration::from_secs(10)
        ),
        "{}",
        gw.logs()
    );
    assert!(
        gw.wait_for_log("recycle complete", Duration::from_secs(20)),
        "{}",
        gw.logs()
    );
    let after = idle_pids(admin, 2);
    assert!(
        after.iter().all(|p| !before.contains(p)),
        "{before:?} {after:?}"
    );
    // The page shows the new ones at its next refresh.
    let shown = format!(
        "JSON.stringify([...document.querySelectorAll('section[data-app=\"php\"] td.pid')].map(t => Number(t.textContent)).sort()) === '{}'",
        serde_json::to_string(&{
            let mut sorted = after.clone();
            sorted.sort();
            sorted
        })
        .unwrap()
    );
    browser.wait_for(&shown);
    let note = browser.evaluate("document.getElementById('note').textContent");
    assert!(note.as_str().unwrap().starts_with("202 Accepted"), "{note}");

    // A picture of the page for docs/operations.md, when asked for.
    if let Ok(target) = std::env::var("FASTGATE_ADMIN_SCREENSHOT") {
        chromium_output(
            profile.path(),
            &[
                "--virtual-time-budget=3000".to_string(),
                "--hide-scrollbars".to_string(),
                format!("--screenshot={target}"),
                url,
            ],
        );
    }
}

/// Escapes nothing it inserts as HTML: the page builds its table with
/// textContent, so a URI with markup stays text.
#[test]
fn the_admin_page_shows_request_text_as_text() {
    let config = format!(
        "{}\n[admin]\nlisten = \"127.0.0.1:0\"\n",
        test_app_config(&[], "max_instances = 1")
    );
    let gw = Gateway::start(&config);
    let admin = admin_addr(&gw);
    let addr = gw.addr();
    // A URI with markup in it, shown as the busy process's request.
    let path = "/py/sleep/4000/%3Cimg%20src=x%20id=injected%3E";
    let slow = std::thread::spawn(move || request(addr, "GET", path, &[], b""));
    let deadline = Instant::now() + Duration::from_secs(10);
    while request(admin, "GET", "/status", &[], b"").json()["apps"][0]["instances"]["busy"] != 1 {
        assert!(Instant::now() < deadline, "never busy");
        std::thread::sleep(Duration::from_millis(20));
    }
    let profile = tempfile::tempdir().unwrap();
    let dom = chromium_output(
        profile.path(),
        &[
            "--virtual-time-budget=1500".to_string(),
            "--dump-dom".to_string(),
            format!("http://{admin}/"),
        ],
    );
    assert!(dom.contains("/py/sleep/4000/%3Cimg"), "{dom}");
    assert!(!dom.contains("id=\"injected\""), "{dom}");
    assert_eq!(slow.join().unwrap().status, 200);
}

#[test]
fn with_a_token_the_admin_page_asks_for_it_once_and_sends_it() {
    let config = format!(
        "{}\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"admin.token\"\n",
        test_app_config(&[], "min_instances = 1")
    );
    let gw = Gateway::start_with(&config, |dir| {
        std::fs::write(dir.join("admin.token"), "page-s3cret\n").unwrap()
    });
    let admin = admin_addr(&gw);
    let bearer = [("Authorization", "Bearer page-s3cret")];
    // The page loads without the token; its data does not.
    assert_eq!(request(admin, "GET", "/", &[], b"").status, 200);
    assert_eq!(request(admin, "GET", "/status", &[], b"").status, 401);
    let profile = tempfile::tempdir().unwrap();
    let mut browser = Browser::open(profile.path(), "about:blank");
    browser.command("Page.enable", serde_json::json!({}));
    browser.command(
        "Page.navigate",
        serde_json::json!({ "url": format!("http://{admin}/") }),
    );
    let dialog = browser.event("Page.javascriptDialogOpening");
    assert_eq!(dialog["params"]["type"], "prompt", "{dialog}");
    browser.command(
        "Page.handleJavaScriptDialog",
        serde_json::json!({ "accept": true, "promptText": "page-s3cret" }),
    );
    browser.wait_for("document.body.dataset.loaded === '1'");
    let kept = browser.evaluate("sessionStorage.getItem('fastgate-admin-token')");
    assert_eq!(kept, "page-s3cret");
    // Its buttons send it too: Take offline, pressed with the mouse.
    let button =
        "document.querySelector('section[data-app=\"py\"] button[data-action=\"offline\"]')";
    let center = browser.evaluate(&format!(
        "(() => {{ const r = {button}.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; }})()"
    ));
    browser.click(center[0].as_f64().unwrap(), center[1].as_f64().unwrap());
    let deadline = Instant::now() + Duration::from_secs(10);
    while request(admin, "GET", "/status", &bearer, b"").json()["apps"][0]["state"] != "offline" {
        assert!(Instant::now() < deadline, "{}", gw.logs());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(gw.get("/py/hello").status, 503);
    // The page shows it, with the button to bring it back; and it never
    // asked again.
    browser.wait_for(
        "document.querySelector('section[data-app=\"py\"] button[data-action=\"online\"]') !== null",
    );
    assert!(
        !browser
            .events
            .iter()
            .any(|e| e["method"] == "Page.javascriptDialogOpening"),
        "asked twice"
    );
}

/// A headless Chromium on one page, driven over the DevTools protocol.
struct Browser {
    child: Child,
    socket: WebSocket,
    next_id: u64,
    /// Events received so far (the protocol's messages without an id).
    events: Vec<serde_json::Value>,
}

impl Browser {
    /// Starts Chromium on `url` with remote debugging on a free port (it
    /// writes the port into `DevToolsActivePort` in its profile).
    fn open(profile: &Path, url: &str) -> Browser {
        let port_file = profile.join("DevToolsActivePort");
        let _ = std::fs::remove_file(&port_file);
        let child = chromium(profile)
            .arg("--remote-debugging-port=0")
            .arg(url)
            .spawn()
            .unwrap_or_else(|e| panic!("chromium: {e} (tests/run.sh installs Debian's chromium)"));
        let mut browser = Browser {
            child,
            socket: WebSocket::dummy(),
            next_id: 1,
            events: Vec::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        let port: u16 = loop {
            if let Some(port) = std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|t| t.lines().next().and_then(|l| l.parse().ok()))
            {
                break port;
            }
            assert!(
                Instant::now() < deadline,
                "chromium wrote no DevToolsActivePort"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let devtools: SocketAddr = ([127, 0, 0, 1], port).into();
        // The page's own socket, from the target list.
        let page = loop {
            let targets = request(devtools, "GET", "/json/list", &[], b"").json();
            let page = targets.as_array().and_then(|all| {
                all.iter()
                    .find(|t| t["type"] == "page" && t["url"].as_str() == Some(url))
                    .and_then(|t| t["webSocketDebuggerUrl"].as_str().map(str::to_string))
            });
            if let Some(page) = page {
                break page;
            }
            assert!(Instant::now() < deadline, "no page target: {targets}");
            std::thread::sleep(Duration::from_millis(50));
        };
        let path = page
            .split_once(&format!("{port}"))
            .map(|(_, path)| path.to_string())
            .unwrap();
        browser.socket = WebSocket::connect(devtools, &path);
        browser
    }

    /// Sends a DevTools command and returns its result.
    fn command(&mut self, method: &str, params: serde_json::Value) -> serde_json::Value {
        let id = self.next_id;
        self.next_id += 1;
        let message = serde_json::json!({ "id": id, "method": method, "params": params });
        self.socket.send(&message.to_string());
        loop {
            let reply: serde_json::Value = serde_json::from_str(&self.socket.receive()).unwrap();
            // Events come in between; the reply carries the id.
            if reply["id"] == id {
                assert!(reply["error"].is_null(), "{method}: {reply}");
                return reply["result"].clone();
            }
            if reply["id"].is_null() {
                self.events.push(reply);
            }
        }
    }

    /// Waits for the event `method` (one not seen yet) and returns it.
    fn event(&mut self, method: &str) -> serde_json::Value {
        loop {
            if let Some(at) = self.events.iter().position(|e| e["method"] == method) {
                return self.events.remove(at);
            }
            let message: serde_json::Value = serde_json::from_str(&self.socket.receive()).unwrap();
            self.events.push(message);
        }
    }

    /// The value of a JavaScript expression in the page.
    fn evaluate(&mut self, expression: &str) -> serde_json::Value {
        let result = self.command(
            "Runtime.evaluate",
            serde_json::json!({ "expression": expression, "returnByValue": true }),
        );
        assert!(
            result["exceptionDetails"].is_null(),
            "{expression}: {result}"
        );
        result["result"]["value"].clone()
    }

    /// Polls until `condition` is true in the page (the page refreshes
    /// itself every 2 s).
    fn wait_for(&mut self, condition: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        // Before the page has loaded, the condition may throw: not yet.
        let guarded =
            format!("(() => {{ try {{ return {condition}; }} catch (e) {{ return false; }} }})()");
        while self.evaluate(&guarded) != serde_json::Value::Bool(true) {
            let html =
                self.evaluate("document.documentElement ? document.documentElement.outerHTML : ''");
            assert!(Instant::now() < deadline, "never {condition}: {html}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A left click at (x, y), as a mouse does it: pressed, then released.
    fn click(&mut self, x: f64, y: f64) {
        for kind in ["mouseMoved", "mousePressed", "mouseReleased"] {
            self.command(
                "Input.dispatchMouseEvent",
                serde_json::json!({ "type": kind, "x": x, "y": y, "button": "left", "clickCount": 1 }),
            );
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Just enough of a WebSocket client (RFC 6455) for the DevTools protocol:
/// masked text frames out, text frames in (fragmented or not).
struct WebSocket {
    stream: Option<BufReader<TcpStream>>,
}

impl WebSocket {
    fn dummy() -> WebSocket {
        WebSocket { stream: None }
    }

    fn connect(addr: SocketAddr, path: &str) -> WebSocket {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ZmFzdGdhdGUtYWRtaW4tdA==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .unwrap();
        let mut reader = BufReader::new(stream);
        let mut status = String::new();
        reader.read_line(&mut status).unwrap();
        assert!(status.contains(" 101 "), "no upgrade: {status}");
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
        }
        WebSocket {
            stream: Some(reader),
        }
    }

    fn stream(&mut self) -> &mut BufReader<TcpStream> {
        self.stream.as_mut().expect("connected")
    }

    fn send(&mut self, text: &str) {
        let payload = text.as_bytes();
        let mask = [0x5a, 0x17, 0xc3, 0x81];
        let mut frame = vec![0x81];
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n < 65536 => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.stream().get_mut().write_all(&frame).unwrap();
    }

    /// The next text message (control frames are skipped).
    fn receive(&mut self) -> String {
        let mut message = Vec::new();
        loop {
            let mut head = [0u8; 2];
            self.stream().read_exact(&mut head).unwrap();
            let (fin, opcode) = (head[0] & 0x80 != 0, head[0] & 0x0f);
            let len = match head[1] & 0x7f {
                126 => {
                    let mut n = [0u8; 2];
                    self.stream().read_exact(&mut n).unwrap();
                    u16::from_be_bytes(n) as usize
                }
                127 => {
                    let mut n = [0u8; 8];
                    self.stream().read_exact(&mut n).unwrap();
                    u64::from_be_bytes(n) as usize
                }
                n => n as usize,
            };
            let mut payload = vec![0u8; len];
            self.stream().read_exact(&mut payload).unwrap();
            assert_ne!(opcode, 0x8, "the browser closed the socket");
            if opcode == 0x1 || opcode == 0x0 {
                message.extend_from_slice(&payload);
                if fin {
                    return String::from_utf8(message).unwrap();
                }
            }
        }
    }
}
