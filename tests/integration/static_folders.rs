//! Static folders outside the document root (issue 13): `[[static]]`, the
//! one mechanism for IIS virtual directories, nginx's `alias` and a
//! launcher's static files (Django's `static_url`), with a `Cache-Control`
//! of its own and the document root's safety.

use crate::util::*;

/// A PHP site over `www/` with `/wp-content/` served from `wp-content/`,
/// beside (not under) the document root, as Debian's WordPress has it.
fn site_with_folder(extra_static: &str) -> String {
    format!(
        "{}\n[[static]]\nurl = \"/wp-content/\"\ndir = \"wp-content\"\n{extra_static}",
        php_config("")
    )
}

/// The folder: a stylesheet, a plugin's PHP file, and a secret beside it.
fn make_folder(dir: &std::path::Path) {
    let folder = dir.join("wp-content");
    std::fs::create_dir_all(folder.join("themes/t")).unwrap();
    std::fs::write(
        folder.join("themes/t/style.css"),
        "body { color: #123456; }\n",
    )
    .unwrap();
    std::fs::write(
        folder.join("plugin.php"),
        "<?php echo 'SOURCE OF A PLUGIN';\n",
    )
    .unwrap();
    std::fs::write(dir.join("secret.txt"), "TOP SECRET\n").unwrap();
}

const CSS: &str = "body { color: #123456; }\n";

#[test]
fn issue13_a_folder_outside_the_root_with_its_cache_control() {
    let config = site_with_folder("cache_control = \"public, max-age=3600\"\n");
    let gw = Gateway::start_with(&config, make_folder);
    let r = gw.get("/wp-content/themes/t/style.css");
    assert_eq!(r.status, 200, "{}", gw.logs());
    assert_eq!(r.text(), CSS);
    assert_eq!(r.header("content-type"), Some("text/css; charset=utf-8"));
    assert_eq!(r.header("cache-control"), Some("public, max-age=3600"));
    let etag = r.header("etag").expect("etag").to_string();
    assert!(r.header("last-modified").is_some());
    // HEAD: the same head, no body.
    let head = request(
        gw.addr(),
        "HEAD",
        "/wp-content/themes/t/style.css",
        &[],
        b"",
    );
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-type"), Some("text/css; charset=utf-8"));
    assert_eq!(
        head.header("content-length"),
        Some(CSS.len().to_string().as_str())
    );
    assert_eq!(head.header("cache-control"), Some("public, max-age=3600"));
    // A range, and a revalidation, keep the folder's header.
    let r = request(
        gw.addr(),
        "GET",
        "/wp-content/themes/t/style.css",
        &[("Range", "bytes=0-3")],
        b"",
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.text(), "body");
    assert_eq!(r.header("cache-control"), Some("public, max-age=3600"));
    let r = request(
        gw.addr(),
        "GET",
        "/wp-content/themes/t/style.css",
        &[("If-None-Match", &etag)],
        b"",
    );
    assert_eq!(r.status, 304);
    assert_eq!(r.header("cache-control"), Some("public, max-age=3600"));
    // Only GET and HEAD; missing files, folders and the prefix itself are
    // 404 (no listing, no index document, no app behind it).
    let r = request(
        gw.addr(),
        "POST",
        "/wp-content/themes/t/style.css",
        &[],
        b"x",
    );
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    for path in [
        "/wp-content/none.css",
        "/wp-content/themes/",
        "/wp-content/",
    ] {
        assert_eq!(gw.get(path).status, 404, "{path}");
    }
    // The document root is as before.
    assert!(gw.get("/page.html").text().contains("static page"));
    assert!(gw.children().is_empty(), "PHP started for static files");
    // `fastgate check` lists the folder.
    let (ok, stdout, stderr) = check_config(&config);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("static      /wp-content/ -> ")
            && stdout.contains("/wp-content, Cache-Control: public, max-age=3600 (file)\n"),
        "{stdout}"
    );
}

#[test]
fn issue13_a_static_folder_never_leaks_a_script_or_leaves_its_folder() {
    let gw = Gateway::start_with(&site_with_folder(""), make_folder);
    // A file the PHP mapping names is neither sent (its source) nor run.
    let r = gw.get("/wp-content/plugin.php");
    assert_eq!(r.status, 404);
    assert!(!r.text().contains("SOURCE"), "{}", r.text());
    assert!(
        !r.text().contains("php"),
        "the client is told nothing: {}",
        r.text()
    );
    assert!(gw.children().is_empty(), "PHP was started");
    assert!(
        gw.wait_for_log(
            "a script of app \"php\" (its *.ext handles) inside the static folder /wp-content/",
            std::time::Duration::from_secs(5)
        ),
        "{}",
        gw.logs()
    );
    // Without a Cache-Control of its own, none is sent.
    let r = gw.get("/wp-content/themes/t/style.css");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("cache-control"), None);
    // Decoded once and normalised before the prefix is looked at: `..`,
    // encoded or not, never reaches the folder's parent.
    for target in [
        "/wp-content/../secret.txt",
        "/wp-content/..%2fsecret.txt",
        "/wp-content/%2e%2e/secret.txt",
        "/wp-content/themes/..%2f..%2f..%2fsecret.txt",
        "/wp-content%2f..%2fsecret.txt",
        "/wp-content/%252e%252e/secret.txt",
        "/wp-content/themes/t/.%2e/.%2e/.%2e/secret.txt",
        "/wp-content/..%5csecret.txt",
    ] {
        let r = send_raw(
            gw.addr(),
            format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
            false,
        );
        assert!(r.status == 400 || r.status == 404, "{target}: {}", r.status);
        assert!(!r.text().contains("TOP SECRET"), "{target} left the folder");
    }
}

#[test]
fn issue13_a_launchers_static_folder_takes_the_files_cache_control() {
    let wsgi = fixtures().join("wsgi").canonicalize().unwrap();
    let www = fixtures().join("www").canonicalize().unwrap();
    let options = format!(
        "wsgi_handler = \"hello_wsgi.application\"\npython_path = {:?}\nstatic_url = \"/static/\"\nstatic_root = {:?}",
        wsgi.display().to_string(),
        www.display().to_string()
    );
    let launcher_only = launcher_site("py", "django", "max_instances = 1", &options);
    let (ok, stdout, stderr) = check_config(&launcher_only);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains(&format!(
            "static      /static/ -> {}, no Cache-Control (launcher \"django\" of app \"py\")\n",
            www.display()
        )),
        "{stdout}"
    );
    // A [[static]] table with the same url and no dir: the launcher's
    // folder, with the file's header.
    let config = format!(
        "{launcher_only}\n[[static]]\nurl = \"/static/\"\ncache_control = \"public, max-age=31536000, immutable\"\n"
    );
    let (ok, stdout, stderr) = check_config(&config);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("Cache-Control: public, max-age=31536000, immutable (file, over launcher \"django\" of app \"py\")"),
        "{stdout}"
    );
    let gw = Gateway::start(&config);
    let r = gw.get("/static/style.css");
    assert_eq!(r.status, 200, "{}", gw.logs());
    assert_eq!(r.body, std::fs::read(www.join("style.css")).unwrap());
    assert_eq!(
        r.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    // The app still gets everything else.
    assert!(gw.get("/anything").text().starts_with("hello from wsgi"));
}

#[test]
fn issue13_static_tables_are_checked() {
    // A bad url, with its line and key.
    let config =
        site_with_folder("").replace("url = \"/wp-content/\"", "url = \"/a/../wp-content/\"");
    let line = config
        .lines()
        .position(|l| l.starts_with("url = "))
        .unwrap()
        + 1;
    let (ok, _, stderr) = check_config(&config);
    assert!(!ok);
    assert!(
        stderr.contains(&format!("fastgate.toml:{line}:")) && stderr.contains("static #1: url"),
        "{stderr}"
    );
    // No folder, and no launcher proposing one at that url.
    let config = site_with_folder("").replace("dir = \"wp-content\"\n", "");
    let (ok, _, stderr) = check_config(&config);
    assert!(!ok);
    assert!(
        stderr.contains("static \"/wp-content/\": dir: missing"),
        "{stderr}"
    );
    assert!(serve_must_fail(&config).contains("static \"/wp-content/\": dir: missing"));
    // The same url twice; a header that is not one.
    let twice = format!(
        "{}[[static]]\nurl = \"/wp-content\"\ndir = \"x\"\n",
        site_with_folder("")
    );
    let (ok, _, stderr) = check_config(&twice);
    assert!(!ok && stderr.contains("given twice"), "{stderr}");
    let (ok, _, stderr) = check_config(&site_with_folder("cache_control = \"\"\n"));
    assert!(
        !ok && stderr.contains("static \"/wp-content/\": cache_control"),
        "{stderr}"
    );
    // A folder that does not exist (yet) is a warning, as the root's is.
    let (ok, stdout, stderr) = check_config(&site_with_folder(""));
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("warning: static \"/wp-content/\": dir ")
            && stdout.contains("is not a directory"),
        "{stdout}"
    );
}
