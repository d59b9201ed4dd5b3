//! Framework launchers: `launcher = "php"` (built in, and the same plugin
//! loaded as a wasm component) starting real php-cgi pools.

use std::time::Duration;

use crate::util::*;

/// A site whose one app is started by `launcher`, with extra app lines and
/// `[app.options]` lines.
fn launcher_config(launcher: &str, app_extra: &str, options: &str) -> String {
    launcher_site(
        "php",
        launcher,
        &format!("max_instances = 2\n{app_extra}"),
        options,
    )
}

/// The environment of a process, from /proc.
fn environ(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/environ"))
        .unwrap()
        .split(|&b| b == 0)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

fn php_children(gw: &Gateway) -> Vec<u32> {
    gw.children()
        .into_iter()
        .filter(|c| c.1.starts_with("php"))
        .map(|c| c.0)
        .collect()
}

#[test]
fn php_launcher_runs_php_cgi_with_its_environment_and_mapping() {
    php_cgi();
    let gw = Gateway::start(&launcher_config("php", "instance_max_requests = 700", ""));
    let r = gw.get("/sub/info.php/x/y?q=1");
    assert_eq!(r.status, 200, "{}", r.text());
    let info = r.json();
    assert_eq!(info["SCRIPT_NAME"], "/sub/info.php");
    assert_eq!(info["PATH_INFO"], "/x/y");
    assert_eq!(info["REQUEST_URI"], "/sub/info.php/x/y?q=1");
    // php-cgi got the FastCGI environment from the launcher.
    let pid = php_children(&gw)[0];
    let env = environ(pid);
    assert!(env.contains(&"PHP_FCGI_CHILDREN=0".to_string()), "{env:?}");
    assert!(
        env.contains(&"PHP_FCGI_MAX_REQUESTS=700".to_string()),
        "{env:?}"
    );
    // resource_type = file: a script that does not exist is a 404, and an
    // image with a .php suffix after it never runs as PHP.
    assert_eq!(gw.get("/nope.php").status, 404);
    assert_eq!(gw.get("/uploads/x.jpg/y.php").status, 404);
    // Static files are still the gateway's.
    assert_eq!(gw.get("/style.css").status, 200);
    gw.assert_no_zombies();
}

#[test]
fn php_launcher_options_front_controller_and_php_ini() {
    php_cgi();
    let dir = tempfile::tempdir().unwrap();
    let ini = dir.path().join("php.ini");
    let prepend = dir.path().join("prepend.php");
    std::fs::write(&prepend, "<?php\n").unwrap();
    std::fs::write(&ini, format!("auto_prepend_file = {}\n", prepend.display())).unwrap();
    let config = launcher_config(
        "php",
        "",
        &format!(
            "front_controller = true\nphp_ini = {:?}",
            ini.display().to_string()
        ),
    );
    let gw = Gateway::start(&config);
    let r = gw.get("/any/path?x=1");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "front controller: /any/path?x=1\n");
    // php.ini from the option (php-cgi -c).
    let info = gw.get("/server.php").json();
    assert_eq!(info["prepend"], prepend.display().to_string(), "{info}");
}

#[test]
fn launcher_errors_stop_the_start_with_a_clear_message() {
    // A typo in [app.options] is the launcher's error, shown by check and serve.
    let stderr = serve_must_fail(&launcher_config("php", "", "front_controler = true"));
    assert!(
        stderr.contains("app \"php\": launcher \"php\"")
            && stderr.contains("unknown field `front_controler`"),
        "{stderr}"
    );
    // php-cgi missing: the gateway refuses to start and names the package.
    let stderr = serve_must_fail(&launcher_config(
        "php",
        "command = \"/nonexistent/bin/php-cgi\"",
        "",
    ));
    assert!(
        stderr.contains("/nonexistent/bin/php-cgi") && stderr.contains("apt-get install php-cgi"),
        "{stderr}"
    );
    // An unknown launcher names the built-ins.
    let stderr = serve_must_fail(&launcher_config("perl", "", ""));
    assert!(stderr.contains("built-in launchers: php"), "{stderr}");
}

#[test]
fn the_php_launcher_works_the_same_as_a_wasm_component() {
    php_cgi();
    let config = format!(
        "{}\n[[plugin]]\nname = \"php-wasm\"\npath = \"{}\"\n",
        launcher_config(
            "php-wasm",
            "instance_max_requests = 300",
            "front_controller = true"
        ),
        plugin_file("plugins/php", PluginBuild::Wasm)
    );
    let gw = Gateway::start(&config);
    assert!(
        gw.wait_for_log(
            "plugin loaded plugin=php-wasm kind=Wasm",
            Duration::from_secs(5)
        ),
        "{}",
        gw.logs()
    );
    assert_eq!(gw.get("/any/path").text(), "front controller: /any/path\n");
    let info = gw.get("/sub/info.php/x").json();
    assert_eq!(info["PATH_INFO"], "/x");
    let env = environ(php_children(&gw)[0]);
    assert!(
        env.contains(&"PHP_FCGI_MAX_REQUESTS=300".to_string()),
        "{env:?}"
    );
}

/// nginx + php-fpm on loopback over the same document root, for comparing
/// what PHP sees. Killed (the whole process group) on drop.
struct NginxPhpFpm {
    _dir: tempfile::TempDir,
    children: Vec<std::process::Child>,
    port: u16,
}

impl Drop for NginxPhpFpm {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = child.wait();
        }
    }
}

fn find(paths: &[&str], package: &str) -> String {
    paths
        .iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or_else(|| panic!("{package} is not installed: run tests/run.sh (it installs it)"))
        .to_string()
}

fn nginx_php_fpm(root: &std::path::Path) -> NginxPhpFpm {
    use std::os::unix::process::CommandExt;
    let nginx = find(&["/usr/sbin/nginx"], "nginx");
    let fpm = find(&["/usr/sbin/php-fpm8.2", "/usr/sbin/php-fpm"], "php-fpm");
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        run.join("php-fpm.conf"),
        format!(
            "[global]\nerror_log = {r}/fpm.log\ndaemonize = no\n[www]\nlisten = {r}/fpm.sock\npm = static\npm.max_children = 2\nuser = root\ngroup = root\nclear_env = yes\n",
            r = run.display()
        ),
    )
    .unwrap();
    // The classic nginx PHP location, with PATH_INFO splitting.
    std::fs::write(
        run.join("nginx.conf"),
        format!(
            r#"daemon off;
user root;
worker_processes 1;
pid {r}/nginx.pid;
error_log {r}/nginx.err;
events {{ }}
http {{
  access_log off;
  client_body_temp_path {r}/body;
  fastcgi_temp_path {r}/fcgi;
  proxy_temp_path {r}/proxy;
  uwsgi_temp_path {r}/uwsgi;
  scgi_temp_path {r}/scgi;
  server {{
    listen 127.0.0.1:{port};
    root {root};
    location ~ [^/]\.php(/|$) {{
      fastcgi_split_path_info ^(.+?\.php)(/.*)$;
      if (!-f $document_root$fastcgi_script_name) {{ return 404; }}
      include /etc/nginx/fastcgi_params;
      fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
      fastcgi_param PATH_INFO $fastcgi_path_info;
      fastcgi_pass unix:{r}/fpm.sock;
    }}
  }}
}}
"#,
            r = run.display(),
            root = root.display()
        ),
    )
    .unwrap();
    let spawn = |program: &str, args: &[&str]| {
        std::process::Command::new(program)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap()
    };
    let fpm_conf = run.join("php-fpm.conf").display().to_string();
    let nginx_conf = run.join("nginx.conf").display().to_string();
    let children = vec![
        spawn(&fpm, &["-R", "-F", "-y", &fpm_conf]),
        spawn(&nginx, &["-c", &nginx_conf]),
    ];
    let peers = NginxPhpFpm {
        _dir: dir,
        children,
        port,
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    loop {
        if std::net::TcpStream::connect(addr).is_ok()
            && request(addr, "GET", "/server.php", &[], b"").status == 200
        {
            return peers;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "nginx + php-fpm did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn php_sees_what_it_sees_behind_nginx_and_php_fpm() {
    php_cgi();
    let gw = Gateway::start(&launcher_config("php", "", ""));
    let peers = nginx_php_fpm(&gw.dir_path().join("www"));
    let nginx: std::net::SocketAddr = format!("127.0.0.1:{}", peers.port).parse().unwrap();
    for url in [
        "/server.php",
        "/server.php?a=1&b=%20x",
        "/sub/info.php/x/y?q=1",
        "/sub/info.php/",
        "/server.php/%C3%A9t%C3%A9",
    ] {
        let ours = gw.get(url).json();
        let theirs = request(nginx, "GET", url, &[], b"").json();
        for key in [
            "SCRIPT_NAME",
            "PATH_INFO",
            "REQUEST_URI",
            "QUERY_STRING",
            "REQUEST_METHOD",
            "HTTPS",
            "GET",
        ] {
            assert_eq!(
                ours[key], theirs[key],
                "{url}: {key}: fastgate {ours} / nginx {theirs}"
            );
        }
    }
    // Both refuse to run an image as PHP.
    assert_eq!(gw.get("/uploads/x.jpg/y.php").status, 404);
    assert_eq!(
        request(nginx, "GET", "/uploads/x.jpg/y.php", &[], b"").status,
        404
    );
}

#[test]
fn php_sessions_cookies_and_uploads_through_the_launcher() {
    php_cgi();
    let gw = Gateway::start(&launcher_config("php", "", ""));
    // Cookies both ways.
    let r = request(
        gw.addr(),
        "GET",
        "/cookies.php",
        &[("Cookie", "a=1; b=two")],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), r#"cookies={"a":"1","b":"two"}"#);
    assert_eq!(r.headers_all("set-cookie"), ["first=one", "second=two"]);
    // A session across requests.
    let r = gw.get("/session.php");
    assert_eq!(r.text(), "n=1");
    let session = r
        .headers_all("set-cookie")
        .iter()
        .find_map(|c| c.split(';').next().filter(|c| c.starts_with("PHPSESSID=")))
        .expect("a session cookie")
        .to_string();
    let r = request(
        gw.addr(),
        "GET",
        "/session.php",
        &[("Cookie", &session)],
        b"",
    );
    assert_eq!(r.text(), "n=2");
    // A multipart upload reaches $_FILES intact.
    let payload = payload(100_000);
    let r = post_upload(gw.addr(), &payload);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), upload_report(&payload));
}
