//! From IIS elements to fastgate.toml text: one `[[app]]` per FastCGI
//! program (the handlers sharing a `scriptProcessor`, as IIS shares one
//! process pool between them), its `<fastCgi><application>` attributes as
//! pool keys, and the Windows program as its Linux launcher.
//!
//! Only settings IIS's files state are written: an absent one keeps
//! fastgate's default, which is IIS's (docs/configuration.md). Anything
//! without an equivalent, and every Windows path, becomes a comment naming
//! the IIS setting with its file and line, so nothing is silently lost.

use super::read::{FastCgiApp, Handler, IisFile};

/// The file names used in comments.
pub struct Sources {
    pub web: String,
    pub host: Option<String>,
}

/// What a Windows FastCGI program becomes here.
#[derive(Debug, PartialEq)]
enum Program {
    Php,
    /// `python.exe|...\wfastcgi.py`: the django launcher (any WSGI app).
    Django,
    /// Anything else: the program's name without `.exe`, looked up on `PATH`.
    Other(String),
}

/// One `[[app]]` being written: its keys, `[app.options]` and `[app.env]`.
#[derive(Default)]
struct AppOut {
    table: Vec<String>,
    options: Vec<String>,
    env: Vec<String>,
}

/// The whole fastgate.toml for the files read.
pub fn render(names: &Sources, web: &IisFile, host: Option<&IisFile>) -> String {
    let mut out = header(names);
    let handlers = effective_handlers(web, host);
    let apps: Vec<&FastCgiApp> = host
        .into_iter()
        .chain(std::iter::once(web))
        .flat_map(|f| &f.apps)
        .collect();
    let mut used_names: Vec<String> = Vec::new();
    let mut used_apps: Vec<String> = Vec::new();
    for group in group_by_processor(&handlers) {
        let processor = group[0].attr("scriptProcessor").unwrap_or_default();
        if processor.trim().is_empty() {
            out.push_str(&format!(
                "\n# not mapped: FastCGI handler {} ({}:{}) names no scriptProcessor\n",
                comment_text(group[0].attr("name").unwrap_or("?")),
                comment_text(&group[0].file),
                group[0].line
            ));
            continue;
        }
        let app = apps
            .iter()
            .copied()
            .find(|a| a.script_processor().eq_ignore_ascii_case(processor));
        if let Some(app) = app {
            used_apps.push(app.script_processor().to_ascii_lowercase());
        }
        let name = unique_name(group[0].attr("name").unwrap_or("app"), &mut used_names);
        let where_app = app.map(|a| (source_of(names, host, a), a));
        out.push_str(&render_app(
            &name,
            &group,
            where_app,
            &web.app_settings,
            names,
        ));
    }
    for app in apps {
        if !used_apps.contains(&app.script_processor().to_ascii_lowercase()) {
            out.push_str(&format!(
                "\n# not mapped: <fastCgi><application fullPath={}> ({}:{}): no FastCGI handler maps requests to it\n",
                comment_text(&app.script_processor()),
                source_of(names, host, app),
                app.line
            ));
        }
    }
    out.push_str(&other_handlers(&handlers));
    out
}

fn header(names: &Sources) -> String {
    let from = match &names.host {
        Some(host) => format!("{} and {host}", names.web),
        None => names.web.clone(),
    };
    format!(
        "# fastgate.toml imported from IIS ({}) by `fastgate import-iis`.\n\
         # \"# IIS:\" comments keep what IIS had; \"# not mapped:\" ones name settings with no\n\
         # equivalent here. Settings IIS left at their defaults are left out: fastgate's\n\
         # defaults are IIS's (docs/configuration.md). Review, then run `fastgate check`.\n\
         \n[server]\n\
         # The site's physical folder: copy the site's files to www/ beside this file.\n\
         root = \"www\"\n\
         # IIS site bindings are not imported; listen defaults to 127.0.0.1:8080.\n",
        comment_text(&from)
    )
}

/// The handler list IIS would use: web.config's entries first (a child's
/// mappings take precedence), then applicationHost.config's, unless
/// web.config cleared or removed them.
fn effective_handlers<'a>(web: &'a IisFile, host: Option<&'a IisFile>) -> Vec<&'a Handler> {
    let inherited = host
        .filter(|_| !web.cleared)
        .into_iter()
        .flat_map(|h| &h.handlers)
        .filter(|h| {
            !web.removed
                .iter()
                .any(|r| Some(r.as_str()) == h.attr("name"))
        });
    web.handlers.iter().chain(inherited).collect()
}

/// FastCGI handlers grouped by program, in order of first appearance.
fn group_by_processor<'a>(handlers: &[&'a Handler]) -> Vec<Vec<&'a Handler>> {
    let mut groups: Vec<Vec<&Handler>> = Vec::new();
    for h in handlers.iter().copied().filter(|h| h.is_fastcgi()) {
        let key = h.attr("scriptProcessor").unwrap_or_default();
        match groups.iter_mut().find(|g| {
            g[0].attr("scriptProcessor")
                .unwrap_or_default()
                .eq_ignore_ascii_case(key)
        }) {
            Some(g) => g.push(h),
            None => groups.push(vec![h]),
        }
    }
    groups
}

/// One line naming each handler of another module (static files, ASP.NET,
/// CGI...): fastgate serves static files from `root` itself.
fn other_handlers(handlers: &[&Handler]) -> String {
    let others: Vec<String> = handlers
        .iter()
        .filter(|h| !h.is_fastcgi())
        .map(|h| {
            format!(
                "{} ({})",
                h.attr("name").unwrap_or("?"),
                h.attr("modules").unwrap_or("?")
            )
        })
        .collect();
    if others.is_empty() {
        return String::new();
    }
    format!(
        "\n# not mapped: handlers of other modules (static files are served from root): {}\n",
        comment_text(&others.join(", "))
    )
}

fn render_app(
    name: &str,
    group: &[&Handler],
    app: Option<(String, &FastCgiApp)>,
    settings: &[(String, String, u32)],
    names: &Sources,
) -> String {
    let first = group[0];
    let processor = first.attr("scriptProcessor").unwrap_or_default();
    let (full_path, args) = processor.split_once('|').unwrap_or((processor, ""));
    let program = program(full_path, args);
    let mut out = AppOut::default();
    out.table.push(format!("name = {}", quoted(name)));
    map_program(&program, full_path, args, &mut out);
    let mapped = map_handlers(group, &program, &mut out);
    match app {
        Some((file, app)) => {
            out.table.push(format!(
                "# IIS: <fastCgi><application> at {}:{}",
                comment_text(&file),
                app.line
            ));
            map_pool(app, &program, &mut out);
        }
        None => out.table.push(format!(
            "# IIS: no <fastCgi><application> for {} in {}: fastgate's defaults apply (pass applicationHost.config too)",
            comment_text(processor),
            comment_text(names.host.as_deref().unwrap_or(&names.web))
        )),
    }
    if program == Program::Django {
        map_app_settings(settings, &names.web, &mut out);
    }
    let mut text = format!("[[app]]\n{}\n", out.table.join("\n"));
    if !out.options.is_empty() {
        text.push_str(&format!("[app.options]\n{}\n", out.options.join("\n")));
    }
    if !out.env.is_empty() {
        text.push_str(&format!("[app.env]\n{}\n", out.env.join("\n")));
    }
    // Without a launcher an app needs `handles`: rather than a file that
    // `fastgate check` refuses, the app is written commented out.
    if !mapped && !matches!(program, Program::Php | Program::Django) {
        let lines: Vec<String> = text
            .lines()
            .map(|l| {
                if l.starts_with('#') {
                    l.to_string()
                } else {
                    format!("# {l}")
                }
            })
            .collect();
        return format!(
            "\n# not mapped: no handler path of {name} is a fastgate pattern; the app is commented out\n{}\n",
            lines.join("\n")
        );
    }
    format!("\n{text}")
}

/// Which Linux program a Windows `fullPath` (and `arguments`) stands for.
fn program(full_path: &str, args: &str) -> Program {
    // A path with spaces is quoted in scriptProcessor.
    let base = file_name(full_path.trim().trim_matches('"')).to_ascii_lowercase();
    let stem = base.strip_suffix(".exe").unwrap_or(&base).to_string();
    if stem == "php-cgi" {
        Program::Php
    } else if stem.starts_with("python")
        && file_name(args.trim().trim_matches('"')).eq_ignore_ascii_case("wfastcgi.py")
    {
        Program::Django
    } else {
        Program::Other(stem)
    }
}

fn map_program(program: &Program, full_path: &str, args: &str, out: &mut AppOut) {
    let original = if args.is_empty() {
        full_path.to_string()
    } else {
        format!("{full_path}|{args}")
    };
    out.table.push(format!(
        "# IIS: scriptProcessor = {}",
        comment_text(&original)
    ));
    match program {
        Program::Php => out.table.push("launcher = \"php\"".into()),
        Program::Django => out.table.push("launcher = \"django\"".into()),
        Program::Other(stem) => {
            out.table.push(format!("command = {}", quoted(stem)));
            let (kept, dropped): (Vec<&str>, Vec<&str>) =
                args.split_whitespace().partition(|a| !is_windows_path(a));
            if !kept.is_empty() {
                let list: Vec<String> = kept.iter().map(|a| quoted(a)).collect();
                out.table.push(format!("args = [{}]", list.join(", ")));
            }
            if !dropped.is_empty() {
                out.table.push(format!(
                    "# not mapped: arguments {} (Windows paths: add the Linux ones to args)",
                    comment_text(&dropped.join(" "))
                ));
            }
        }
    }
    if *program == Program::Php && !args.is_empty() {
        out.table.push(format!(
            "# not mapped: arguments {} (a php.ini goes in [app.options] php_ini, -d settings in args)",
            comment_text(args)
        ));
    }
}

/// The handlers' `path`, `verb`, `resourceType` and `responseBufferLimit`;
/// whether any path became a `handles` pattern.
fn map_handlers(group: &[&Handler], program: &Program, out: &mut AppOut) -> bool {
    let mut handles = Vec::new();
    for h in group {
        out.table.push(format!(
            "# IIS: handler {} at {}:{}",
            comment_text(h.attr("name").unwrap_or("?")),
            comment_text(&h.file),
            h.line
        ));
        match h.attr("path").unwrap_or("*") {
            // wfastcgi apps route themselves: the launcher proposes "/*".
            "*" if *program == Program::Django => out
                .table
                .push("# IIS: path = \"*\"; the django launcher maps \"/*\" (every path)".into()),
            p if p == "*" || (p.starts_with("*.") && !p[1..].contains(['*', '/', '\\'])) => {
                handles.push(quoted(p))
            }
            p => out.table.push(format!(
                "# not mapped: path = {} (handles takes \"*\", \"*.ext\", \"/prefix/*\" or \"/exact/path\")",
                quoted(p)
            )),
        }
        for (key, value) in &h.attrs {
            map_handler_attr(key, value, out);
        }
    }
    if handles.is_empty() {
        return false;
    }
    out.table
        .push(format!("handles = [{}]", handles.join(", ")));
    true
}

fn map_handler_attr(key: &str, value: &str, out: &mut AppOut) {
    match key {
        "name" | "path" | "modules" | "scriptProcessor" => {}
        "verb" if value.trim() == "*" => {}
        "verb" => {
            let verbs: Vec<String> = value
                .split(',')
                .map(|v| quoted(&v.trim().to_ascii_uppercase()))
                .collect();
            out.table.push(format!("verbs = [{}]", verbs.join(", ")));
        }
        "resourceType" => match value.to_ascii_lowercase().as_str() {
            v @ ("file" | "directory" | "either" | "unspecified") => {
                out.table.push(format!("resource_type = \"{v}\""))
            }
            _ => not_mapped(out, key, value, "not a resourceType IIS knows"),
        },
        "responseBufferLimit" => match value.parse::<u64>() {
            Ok(n) => out.table.push(format!("response_buffer_limit = {n}")),
            Err(_) => not_mapped(out, key, value, "not a number"),
        },
        _ => not_mapped(out, key, value, "no equivalent"),
    }
}

/// The `<fastCgi><application>` attributes and environment variables.
fn map_pool(app: &FastCgiApp, program: &Program, out: &mut AppOut) {
    for (key, value) in &app.attrs {
        map_pool_attr(key, value, out);
    }
    for (name, value) in &app.env {
        map_env(name, value, program, out);
    }
}

fn map_pool_attr(key: &str, value: &str, out: &mut AppOut) {
    let number = |out: &mut AppOut, ours: &str, unit: &str| match value.trim().parse::<u64>() {
        Ok(n) if unit.is_empty() => out.table.push(format!("{ours} = {n}")),
        Ok(n) => out.table.push(format!("{ours} = \"{n}{unit}\"")),
        Err(_) => not_mapped(out, key, value, "not a number"),
    };
    match key {
        "fullPath" | "arguments" => {}
        "maxInstances" => number(out, "max_instances", ""),
        "instanceMaxRequests" => number(out, "instance_max_requests", ""),
        "queueLength" => number(out, "queue_length", ""),
        "rapidFailsPerMinute" => number(out, "rapid_fails_per_minute", ""),
        "activityTimeout" => number(out, "activity_timeout", "s"),
        "requestTimeout" => number(out, "request_timeout", "s"),
        "idleTimeout" => number(out, "idle_timeout", "s"),
        "signalBeforeTerminateSeconds" => number(out, "signal_before_terminate", "s"),
        "stderrMode" => match stderr_mode(value) {
            Some(mode) => out.table.push(format!("stderr_mode = \"{mode}\"")),
            None => not_mapped(out, key, value, "not a stderrMode IIS knows"),
        },
        "protocol" => match value.to_ascii_lowercase().as_str() {
            "namedpipe" => out.table.push("protocol = \"unix\"".into()),
            "tcp" => out.table.push("protocol = \"tcp\"".into()),
            _ => not_mapped(out, key, value, "not a protocol IIS knows"),
        },
        "monitorChangesTo" => not_mapped(
            out,
            key,
            value,
            "a Windows path: list the Linux file in monitor_changes_to",
        ),
        _ => not_mapped(out, key, value, "no equivalent"),
    }
}

fn stderr_mode(iis: &str) -> Option<&'static str> {
    Some(match iis.to_ascii_lowercase().as_str() {
        "returnstderrin500" => "return-stderr-in-500",
        "returngeneric500" => "return-generic-500",
        "ignoreandreturn200" => "ignore-and-return-200",
        "terminateprocess" => "terminate-process",
        _ => return None,
    })
}

fn map_env(name: &str, value: &str, program: &Program, out: &mut AppOut) {
    if *program == Program::Django && django_option(name).is_some() {
        map_django_setting(name, value, out);
    } else if *program == Program::Php && name == "PHPRC" {
        not_mapped(
            out,
            "PHPRC",
            value,
            "set [app.options] php_ini to the Linux php.ini",
        );
    } else if *program == Program::Php && name == "PHP_FCGI_CHILDREN" {
        not_mapped(
            out,
            name,
            value,
            "the php launcher sets 0: the pool is the process manager",
        );
    } else if is_windows_path(value) {
        not_mapped(
            out,
            name,
            value,
            "a Windows path: set the Linux one in [app.env]",
        );
    } else {
        out.env
            .push(format!("{} = {}", quoted(name), quoted(value)));
    }
}

/// wfastcgi copies every appSetting into the environment; the three it
/// reads itself are the django launcher's options.
fn map_app_settings(settings: &[(String, String, u32)], file: &str, out: &mut AppOut) {
    for (key, value, line) in settings {
        out.options.push(format!(
            "# IIS: <appSettings> {} at {}:{line}",
            comment_text(key),
            comment_text(file)
        ));
        match key.as_str() {
            k if django_option(k).is_some() => map_django_setting(k, value, out),
            "WSGI_LOG" => not_mapped_option(
                out,
                key,
                value,
                "the bridge's stderr is in the gateway's log",
            ),
            "WSGI_RESTART_FILE_REGEX" => not_mapped_option(
                out,
                key,
                value,
                "list the files to watch in monitor_changes_to",
            ),
            k if k.starts_with("WSGI_") => {
                not_mapped_option(out, key, value, "a wfastcgi setting with no equivalent")
            }
            _ if is_windows_path(value) => not_mapped_option(
                out,
                key,
                value,
                "a Windows path: set the Linux one in [app.env]",
            ),
            _ => out.env.push(format!("{} = {}", quoted(key), quoted(value))),
        }
    }
}

fn django_option(setting: &str) -> Option<&'static str> {
    match setting {
        "WSGI_HANDLER" => Some("wsgi_handler"),
        "DJANGO_SETTINGS_MODULE" => Some("django_settings_module"),
        "PYTHONPATH" | "PYTHON_PATH" => Some("python_path"),
        _ => None,
    }
}

/// One of the three wfastcgi settings as a django launcher option. IIS's
/// PYTHONPATH names the site's own folder as a Windows path; the import
/// makes it ".", the folder of fastgate.toml, where the project
/// (`manage.py`) is expected to be put, and keeps the original beside it.
fn map_django_setting(key: &str, value: &str, out: &mut AppOut) {
    let Some(option) = django_option(key) else {
        return;
    };
    // <appSettings> come after the environment variables and win, as in
    // wfastcgi; a key set twice would make the TOML invalid.
    let prefix = format!("{option} = ");
    out.options.retain(|l| !l.starts_with(&prefix));
    if option != "python_path" {
        out.options.push(format!("{prefix}{}", quoted(value)));
        return;
    }
    let mut entries: Vec<String> = Vec::new();
    let mut windows = Vec::new();
    for entry in value.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        if is_windows_path(entry) {
            windows.push(entry);
        } else {
            entries.push(entry.replace('\\', "/"));
        }
    }
    if !windows.is_empty() {
        out.options.push(format!(
            "# IIS: {key} = {}: \".\" is the folder of this file; put the project (where manage.py is) there, or set its Linux path",
            comment_text(&windows.join(";"))
        ));
        entries.insert(0, ".".into());
    }
    out.options
        .push(format!("{prefix}{}", quoted(&entries.join(":"))));
}

fn not_mapped(out: &mut AppOut, key: &str, value: &str, why: &str) {
    out.table.push(not_mapped_line(key, value, why));
}

fn not_mapped_option(out: &mut AppOut, key: &str, value: &str, why: &str) {
    out.options.push(not_mapped_line(key, value, why));
}

fn not_mapped_line(key: &str, value: &str, why: &str) -> String {
    format!(
        "# not mapped: {} = {} ({why})",
        comment_text(key),
        comment_text(value)
    )
}

/// `C:\...`, `C:/...`, a UNC `\\server\share` path, or one starting with
/// an environment variable (`%SystemDrive%\PHP`).
fn is_windows_path(s: &str) -> bool {
    let s = s.trim().trim_matches('"');
    let b = s.as_bytes();
    s.starts_with("\\\\")
        || (s.starts_with('%') && s.contains('\\'))
        || (b.len() >= 3
            && b[0].is_ascii_alphabetic()
            && b[1] == b':'
            && matches!(b[2], b'\\' | b'/'))
}

fn file_name(path: &str) -> &str {
    path.rsplit(['\\', '/']).next().unwrap_or(path)
}

/// The source file an application element came from.
fn source_of(names: &Sources, host: Option<&IisFile>, app: &FastCgiApp) -> String {
    let in_host = host.is_some_and(|h| h.apps.iter().any(|a| std::ptr::eq(a, app)));
    match (&names.host, in_host) {
        (Some(host), true) => host.clone(),
        _ => names.web.clone(),
    }
}

/// An app name from a handler name: letters, digits, `-`, `_`, unique.
fn unique_name(handler: &str, used: &mut Vec<String>) -> String {
    let mut base: String = handler
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if base.trim_matches('_').is_empty() {
        base = "app".into();
    }
    let mut name = base.clone();
    let mut n = 2;
    while used.contains(&name) {
        name = format!("{base}-{n}");
        n += 1;
    }
    used.push(name.clone());
    name
}

/// A TOML basic string.
fn quoted(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// Text for a `#` comment: one line, as written in IIS (Windows paths
/// read as they were; a comment needs no escaping).
fn comment_text(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn programs_map_to_launchers() {
        assert_eq!(program("C:\\PHP\\php-cgi.exe", ""), Program::Php);
        assert_eq!(
            program(
                "C:\\Python311\\python.exe",
                "C:\\Python311\\Lib\\site-packages\\wfastcgi.py"
            ),
            Program::Django
        );
        assert_eq!(
            program("C:\\Python311\\python.exe", "app.py"),
            Program::Other("python".into())
        );
        assert_eq!(
            program("D:\\Ruby\\bin\\Ruby.EXE", ""),
            Program::Other("ruby".into())
        );
    }

    #[test]
    fn windows_paths_are_recognised() {
        assert!(is_windows_path("C:\\PHP"));
        assert!(is_windows_path("d:/x"));
        assert!(is_windows_path("\\\\server\\share"));
        assert!(!is_windows_path("10000"));
        assert!(!is_windows_path("lib\\x"));
        assert!(is_windows_path("%SystemDrive%\\PHP"));
        assert_eq!(
            program("\"C:\\Program Files\\PHP\\php-cgi.exe\"", ""),
            Program::Php
        );
    }

    #[test]
    fn names_are_sanitised_and_unique() {
        let mut used = Vec::new();
        assert_eq!(unique_name("Python FastCGI", &mut used), "Python_FastCGI");
        assert_eq!(unique_name("Python FastCGI", &mut used), "Python_FastCGI-2");
        assert_eq!(unique_name("***", &mut used), "app");
    }

    #[test]
    fn stderr_modes_map_to_snake_case() {
        assert_eq!(
            stderr_mode("ReturnStdErrIn500"),
            Some("return-stderr-in-500")
        );
        assert_eq!(stderr_mode("TerminateProcess"), Some("terminate-process"));
        assert_eq!(stderr_mode("Other"), None);
    }
}
