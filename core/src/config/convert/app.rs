//! One `[[app]]` table → [`AppSettings`], a concern at a time: the launcher,
//! the command, the handler mapping, the pool's limits, its timeouts, and
//! the environment the processes get.
//!
//! Keys are checked in the order they always were, so that a file with
//! several mistakes reports the same one first. This module does not
//! resolve plugin references (that is the parent, which knows every
//! `[[plugin]]`) and does not look for the command on `PATH`.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use super::section::Section;
use super::{table_json, table_name};
use crate::config::mounts::{file_at_root, outside_mount};
use crate::config::parse::{
    parse_fallback, parse_mount, parse_pattern, parse_protocol, parse_resource_type,
    parse_stderr_mode, parse_verb,
};
use crate::config::raw::{EnvValue, RawApp, Scalar};
use crate::config::source::Source;
use crate::config::users::{self, Id, Rlimits, RunAs};
use crate::config::{
    AppKey, AppSettings, ConfigError, HandlerPattern, LauncherRef, Origins, Protocol, ResourceType,
    ServerSettings, StderrMode, Verbs, cpu_count, defaults,
};

/// Converts one `[[app]]` (the `index`-th, at `span`), and returns with it
/// the line of its `command` key for `fastgate check`. Findings that do not
/// stop the gateway go to `warnings`.
pub(super) fn convert_app(
    raw: RawApp,
    span: Range<usize>,
    index: usize,
    server: &ServerSettings,
    src: &Source<'_>,
    warnings: &mut Vec<String>,
) -> Result<AppSettings, ConfigError> {
    let name = table_name(raw.name.as_ref(), "app", span.clone(), index, src)?;
    let t = Section::new(src, format!("app \"{name}\": "));
    let launcher = launcher_ref(&raw, span.clone(), &t)?;
    let origins = Origins::from_file(keys_in_file(&raw));
    let (command, command_line) = command(raw.command.as_ref(), launcher.is_some(), &span, &t)?;
    let mapping = mapping(&raw, launcher.is_some(), span.clone(), &t)?;
    let mount = mount(&raw, &origins, &mapping, &t)?;
    let pool = pool_limits(&raw, &t)?;
    let protocol = t.read_or(raw.protocol.as_ref(), "protocol", Protocol::Unix, |v| {
        parse_protocol(v)
    })?;
    let lifetimes = lifetimes(&raw, &t)?;
    if let Some(slow) = lifetimes.slow_request_timeout
        && slow >= lifetimes.request_timeout
    {
        warnings.push(format!(
            "app \"{name}\": slow_request_timeout ({}) is not shorter than request_timeout ({}): \
             requests are stopped before they could be logged as slow",
            humantime::format_duration(slow),
            humantime::format_duration(lifetimes.request_timeout),
        ));
    }
    let response = response(&raw, &t)?;
    let run_as = run_as(&raw, &span, &t)?;
    let rlimits = rlimits(&raw, &t)?;
    let env = env(raw.env, &name, pool.instance_max_requests, warnings);
    let root = raw
        .root
        .map_or_else(|| server.root.clone(), |r| src.path(&r));
    if !root.is_dir() && root != server.root {
        warnings.push(format!(
            "app \"{name}\": root {} is not a directory",
            root.display()
        ));
    }
    let app = AppSettings {
        name,
        command,
        args: raw.args,
        working_dir: raw.working_dir.map(|d| src.path(&d)),
        root,
        mount,
        handles: mapping.handles,
        verbs: mapping.verbs,
        resource_type: mapping.resource_type,
        fallback: mapping.fallback,
        max_instances: pool.max_instances,
        max_instances_auto_ceiling: pool.max_instances_auto_ceiling,
        min_instances: pool.min_instances,
        instance_max_requests: pool.instance_max_requests,
        queue_length: pool.queue_length,
        protocol,
        env,
        inherit_env: raw.inherit_env,
        params: strings(raw.params).collect(),
        signal_before_terminate: lifetimes.signal_before_terminate,
        request_timeout: lifetimes.request_timeout,
        slow_request_timeout: lifetimes.slow_request_timeout,
        instance_max_memory: pool.instance_max_memory,
        activity_timeout: lifetimes.activity_timeout,
        idle_timeout: lifetimes.idle_timeout,
        rapid_fails_per_minute: lifetimes.rapid_fails_per_minute,
        stderr_mode: response.stderr_mode,
        monitor_changes_to: raw.monitor_changes_to.iter().map(|p| src.path(p)).collect(),
        response_buffer_limit: response.buffer_limit,
        response_buffering: response.buffering,
        response_memory_buffer: response.memory_buffer,
        max_temp_file_size: response.max_temp_file_size,
        plugins: Vec::new(),
        launcher,
        origins,
        runtime_files: Vec::new(),
        runtime_dirs: Vec::new(),
        static_dirs: Vec::new(),
        cgi: None,
        command_line,
        run_as,
        rlimits,
    };
    Ok(app)
}

/// `launcher` and `[app.options]`, with what the user set themselves (which
/// the launcher must not override).
fn launcher_ref(
    raw: &RawApp,
    span: Range<usize>,
    t: &Section<'_>,
) -> Result<Option<LauncherRef>, ConfigError> {
    let Some(plugin) = &raw.launcher else {
        if raw.options.is_some() {
            return Err(t.error(
                Some(span),
                "options",
                "[app.options] is for a launcher's settings; this app has no `launcher`",
            ));
        }
        return Ok(None);
    };
    Ok(Some(LauncherRef {
        plugin: plugin.get_ref().clone(),
        options_json: table_json(raw.options.clone()),
    }))
}

/// The keys of `raw` that a launcher must not override. An empty `command`
/// is not one: with a launcher it means "the launcher's program".
fn keys_in_file(raw: &RawApp) -> Vec<AppKey> {
    let command = raw
        .command
        .as_ref()
        .is_some_and(|c| !c.get_ref().is_empty());
    [
        (AppKey::Command, command),
        (AppKey::Handles, raw.handles.is_some()),
        (AppKey::Mount, raw.mount.is_some()),
        (AppKey::ResourceType, raw.resource_type.is_some()),
        (AppKey::Fallback, raw.fallback.is_some()),
        (AppKey::MaxInstances, raw.max_instances.is_some()),
        (AppKey::MinInstances, raw.min_instances.is_some()),
        (
            AppKey::InstanceMaxRequests,
            raw.instance_max_requests.is_some(),
        ),
        (AppKey::QueueLength, raw.queue_length.is_some()),
        (AppKey::RequestTimeout, raw.request_timeout.is_some()),
        (
            AppKey::SlowRequestTimeout,
            raw.slow_request_timeout.is_some(),
        ),
        (AppKey::InstanceMaxMemory, raw.instance_max_memory.is_some()),
        (AppKey::ActivityTimeout, raw.activity_timeout.is_some()),
        (AppKey::IdleTimeout, raw.idle_timeout.is_some()),
        (AppKey::StderrMode, raw.stderr_mode.is_some()),
    ]
    .into_iter()
    .filter_map(|(key, set)| set.then_some(key))
    .collect()
}

/// `command` and the line it is on. A path with a `/` resolves against the
/// config's folder; a bare name is left for `PATH`. With a launcher the
/// command may be absent or empty: the launcher will say what to run.
fn command(
    raw: Option<&Spanned<String>>,
    has_launcher: bool,
    span: &Range<usize>,
    t: &Section<'_>,
) -> Result<(PathBuf, Option<usize>), ConfigError> {
    let Some(command) = raw else {
        if has_launcher {
            // The line of the `[[app]]` itself.
            return Ok((PathBuf::new(), Some(t.src.position(span.start).0)));
        }
        return Err(t.error(
            Some(span.clone()),
            "command",
            "missing key `command` (the program to run, IIS fullPath), or a `launcher`",
        ));
    };
    let line = Some(t.src.position(command.span().start).0);
    let text = command.get_ref();
    if text.is_empty() {
        if has_launcher {
            return Ok((PathBuf::new(), line));
        }
        return Err(t.error(Some(command.span()), "command", "must not be empty"));
    }
    let path = if text.contains('/') {
        t.src.path(text)
    } else {
        PathBuf::from(text)
    };
    Ok((path, line))
}

/// `handles`, `verbs`, `resource_type` and `fallback`: which requests
/// reach the app, and what must exist on disk for them.
struct Mapping {
    handles: Vec<HandlerPattern>,
    verbs: Verbs,
    resource_type: ResourceType,
    fallback: Option<String>,
}

fn mapping(
    raw: &RawApp,
    has_launcher: bool,
    span: Range<usize>,
    t: &Section<'_>,
) -> Result<Mapping, ConfigError> {
    let handles = handles(raw.handles.as_ref(), has_launcher, span, t)?;
    let verbs = match raw.verbs.as_deref() {
        None => Verbs::Any,
        Some(list) if list.iter().any(|v| v.get_ref() == "*") => Verbs::Any,
        Some(list) => Verbs::List(
            list.iter()
                .map(|v| t.read(v, "verbs", |v| parse_verb(v)))
                .collect::<Result<_, _>>()?,
        ),
    };
    let resource_type = t.read_or(
        raw.resource_type.as_ref(),
        "resource_type",
        ResourceType::File,
        |v| parse_resource_type(v),
    )?;
    let fallback = t.read_or(raw.fallback.as_ref(), "fallback", None, |v| {
        parse_fallback(v).map(Some)
    })?;
    Ok(Mapping {
        handles,
        verbs,
        resource_type,
        fallback,
    })
}

/// `handles`: at least one pattern, unless a launcher proposes them.
fn handles(
    raw: Option<&Spanned<Vec<Spanned<String>>>>,
    has_launcher: bool,
    span: Range<usize>,
    t: &Section<'_>,
) -> Result<Vec<HandlerPattern>, ConfigError> {
    let Some(handles) = raw else {
        if has_launcher {
            return Ok(Vec::new());
        }
        return Err(t.error(
            Some(span),
            "handles",
            "missing key `handles` (e.g. [\"*.php\"])",
        ));
    };
    // Written but empty: even a launcher's proposal would be overridden by it.
    if handles.get_ref().is_empty() {
        return Err(t.error(
            Some(handles.span()),
            "handles",
            "needs at least one pattern",
        ));
    }
    handles
        .get_ref()
        .iter()
        .map(|p| t.read(p, "handles", |p| parse_pattern(p)))
        .collect()
}

/// `mount`, checked against the mapping here as far as no launcher can
/// change it any more (the rest once the launcher has proposed its
/// mapping, by `config::check_mappings`).
fn mount(
    raw: &RawApp,
    origins: &Origins,
    mapping: &Mapping,
    t: &Section<'_>,
) -> Result<String, ConfigError> {
    let mount = t.read_or(raw.mount.as_ref(), "mount", String::new(), |v| {
        parse_mount(v)
    })?;
    let own = |key| raw.launcher.is_none() || origins.in_file(key);
    let outside = own(AppKey::Handles)
        .then(|| outside_mount(&mount, &mapping.handles))
        .flatten();
    let at_root = (own(AppKey::Handles) && own(AppKey::ResourceType))
        .then(|| file_at_root(&mount, &mapping.handles, mapping.resource_type))
        .flatten();
    if let Some(problem) = outside.or(at_root) {
        let span = raw
            .mount
            .as_ref()
            .map(Spanned::span)
            .or_else(|| raw.handles.as_ref().map(Spanned::span));
        return Err(t.error(span, "mount", problem));
    }
    Ok(mount)
}

/// How many processes, and how much work each and the queue take.
struct PoolLimits {
    max_instances: u32,
    max_instances_auto_ceiling: u32,
    min_instances: u32,
    instance_max_requests: u64,
    /// `instance_max_memory` in bytes; 0 (the default) is off.
    instance_max_memory: Option<u64>,
    queue_length: usize,
}

fn pool_limits(raw: &RawApp, t: &Section<'_>) -> Result<PoolLimits, ConfigError> {
    let max_instances = t.count(
        raw.max_instances.as_ref(),
        "max_instances",
        defaults::MAX_INSTANCES as u64,
        0,
    )?;
    let ceiling = raw.max_instances_auto_ceiling.as_ref();
    let max_instances_auto_ceiling = t.count(
        ceiling,
        "max_instances_auto_ceiling",
        4 * cpu_count() as u64,
        1,
    )?;
    if max_instances != 0
        && let Some(ceiling) = ceiling
    {
        return Err(t.error(
            Some(ceiling.span()),
            "max_instances_auto_ceiling",
            "only applies with max_instances = 0 (automatic sizing)",
        ));
    }
    // With automatic sizing the bound that matters is the ceiling.
    let upper = if max_instances == 0 {
        max_instances_auto_ceiling
    } else {
        max_instances
    };
    let min = raw.min_instances.as_ref();
    let min_instances = t.count(min, "min_instances", defaults::MIN_INSTANCES as u64, 0)?;
    if min_instances > upper {
        return Err(t.error(
            min.map(Spanned::span),
            "min_instances",
            format!("{min_instances} is more than max_instances ({upper})"),
        ));
    }
    let instance_max_requests = t.count(
        raw.instance_max_requests.as_ref(),
        "instance_max_requests",
        defaults::INSTANCE_MAX_REQUESTS,
        1,
    )?;
    let instance_max_memory = t.size(raw.instance_max_memory.as_ref(), "instance_max_memory", 0)?;
    let queue_length = t.count(
        raw.queue_length.as_ref(),
        "queue_length",
        defaults::QUEUE_LENGTH as u64,
        0,
    )?;
    Ok(PoolLimits {
        max_instances: u32::try_from(max_instances).unwrap_or(u32::MAX),
        max_instances_auto_ceiling: u32::try_from(max_instances_auto_ceiling).unwrap_or(u32::MAX),
        min_instances: u32::try_from(min_instances).unwrap_or(u32::MAX),
        instance_max_requests,
        instance_max_memory: (instance_max_memory > 0).then_some(instance_max_memory),
        queue_length: usize::try_from(queue_length).unwrap_or(usize::MAX),
    })
}

/// How long a request and an instance may run, and when failing instances
/// take the app offline.
struct Lifetimes {
    signal_before_terminate: Duration,
    request_timeout: Duration,
    /// `slow_request_timeout`; 0 (the default) is off.
    slow_request_timeout: Option<Duration>,
    activity_timeout: Duration,
    idle_timeout: Duration,
    rapid_fails_per_minute: u32,
}

fn lifetimes(raw: &RawApp, t: &Section<'_>) -> Result<Lifetimes, ConfigError> {
    let signal_before_terminate = t.duration(
        raw.signal_before_terminate.as_ref(),
        "signal_before_terminate",
        defaults::SIGNAL_BEFORE_TERMINATE,
    )?;
    let request_timeout = t.timeout(
        raw.request_timeout.as_ref(),
        "request_timeout",
        defaults::REQUEST_TIMEOUT,
    )?;
    let slow_request_timeout = t.duration(
        raw.slow_request_timeout.as_ref(),
        "slow_request_timeout",
        Duration::ZERO,
    )?;
    let activity_timeout = t.timeout(
        raw.activity_timeout.as_ref(),
        "activity_timeout",
        defaults::ACTIVITY_TIMEOUT,
    )?;
    let idle_timeout = t.timeout(
        raw.idle_timeout.as_ref(),
        "idle_timeout",
        defaults::IDLE_TIMEOUT,
    )?;
    let rapid_fails_per_minute = t.count(
        raw.rapid_fails_per_minute.as_ref(),
        "rapid_fails_per_minute",
        defaults::RAPID_FAILS_PER_MINUTE as u64,
        1,
    )?;
    Ok(Lifetimes {
        signal_before_terminate,
        request_timeout,
        slow_request_timeout: (!slow_request_timeout.is_zero()).then_some(slow_request_timeout),
        activity_timeout,
        idle_timeout,
        rapid_fails_per_minute: u32::try_from(rapid_fails_per_minute).unwrap_or(u32::MAX),
    })
}

/// How the app's responses are taken: stderr, buffering before the head,
/// spooling for slow clients.
struct Response {
    stderr_mode: StderrMode,
    buffer_limit: u64,
    buffering: bool,
    memory_buffer: u64,
    max_temp_file_size: u64,
}

fn response(raw: &RawApp, t: &Section<'_>) -> Result<Response, ConfigError> {
    Ok(Response {
        stderr_mode: t.read_or(
            raw.stderr_mode.as_ref(),
            "stderr_mode",
            StderrMode::ReturnStderrIn500,
            |v| parse_stderr_mode(v),
        )?,
        buffer_limit: t.size(
            raw.response_buffer_limit.as_ref(),
            "response_buffer_limit",
            defaults::RESPONSE_BUFFER_LIMIT,
        )?,
        buffering: raw.response_buffering.unwrap_or(true),
        memory_buffer: t.size(
            raw.response_memory_buffer.as_ref(),
            "response_memory_buffer",
            defaults::RESPONSE_MEMORY_BUFFER,
        )?,
        max_temp_file_size: t.size(
            raw.max_temp_file_size.as_ref(),
            "max_temp_file_size",
            defaults::MAX_TEMP_FILE_SIZE,
        )?,
    })
}

/// `user` and `group`, looked up now: an unknown name is an error at its
/// line, not a failed start later.
fn run_as(raw: &RawApp, span: &Range<usize>, t: &Section<'_>) -> Result<RunAs, ConfigError> {
    let id = |v: Option<&Spanned<Scalar>>, key| {
        v.map(|v| {
            t.read(v, key, |v| match v {
                Scalar::Str(s) if !s.is_empty() => Ok(Id::Name(s.clone())),
                Scalar::Int(n) => u32::try_from(*n)
                    .map(Id::Number)
                    .map_err(|_| format!("{n} is not a valid id")),
                Scalar::Str(_) => Err("must not be empty".into()),
            })
        })
        .transpose()
    };
    let user = id(raw.user.as_ref(), "user")?;
    let group = id(raw.group.as_ref(), "group")?;
    let mut run_as = users::resolve(user.as_ref(), group.as_ref(), nix::unistd::Uid::effective())
        .map_err(|(key, message)| {
        let at = if key == "user" { &raw.user } else { &raw.group };
        let span = at.as_ref().map_or(span.clone(), Spanned::span);
        t.error(Some(span), key, message)
    })?;
    let at = raw
        .user
        .as_ref()
        .or(raw.group.as_ref())
        .map_or(span.start, |v| v.span().start);
    run_as.line = Some(t.src.position(at).0);
    Ok(run_as)
}

/// `rlimit_*`: absent or 0 leaves the gateway's own limit.
fn rlimits(raw: &RawApp, t: &Section<'_>) -> Result<Rlimits, ConfigError> {
    let nonzero = |n: u64| (n > 0).then_some(n);
    let cpu = t.duration(raw.rlimit_cpu.as_ref(), "rlimit_cpu", Duration::ZERO)?;
    if cpu.subsec_nanos() != 0 {
        return Err(t.error(
            raw.rlimit_cpu.as_ref().map(Spanned::span),
            "rlimit_cpu",
            "the kernel counts CPU time in whole seconds",
        ));
    }
    Ok(Rlimits {
        nofile: nonzero(t.count(raw.rlimit_nofile.as_ref(), "rlimit_nofile", 0, 0)?),
        address_space: nonzero(t.size(raw.rlimit_as.as_ref(), "rlimit_as", 0)?),
        cpu_seconds: nonzero(cpu.as_secs()),
        nproc: nonzero(t.count(raw.rlimit_nproc.as_ref(), "rlimit_nproc", 0, 0)?),
    })
}

/// `[app.env]` as text. php-cgi recycles itself after PHP_FCGI_MAX_REQUESTS;
/// below `instance_max_requests` that wins, which is worth a warning.
fn env(
    raw: BTreeMap<String, EnvValue>,
    app: &str,
    instance_max_requests: u64,
    warnings: &mut Vec<String>,
) -> BTreeMap<String, String> {
    let env: BTreeMap<String, String> = strings(raw).collect();
    if let Some(php_max) = crate::config::php_fcgi_max_requests(&env)
        && php_max < instance_max_requests
    {
        warnings.push(format!(
            "app \"{app}\": PHP_FCGI_MAX_REQUESTS ({php_max}) is lower than instance_max_requests ({instance_max_requests}): \
             php-cgi would exit on its own first, so instances are recycled after {php_max} requests",
        ));
    }
    env
}

/// `[app.env]` / `[app.params]` entries with their values as text.
fn strings(raw: BTreeMap<String, EnvValue>) -> impl Iterator<Item = (String, String)> {
    raw.into_iter().map(|(k, v)| (k, v.into_string()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use http::Method;

    use crate::config::Verbs;
    use crate::config::test_support::{MINIMAL, load};

    #[test]
    fn verbs_are_upper_cased_and_checked() {
        let c = load(&format!("{MINIMAL}verbs = [\"get\", \"POST\"]\n")).unwrap();
        assert_eq!(
            c.apps[0].verbs,
            Verbs::List(vec![Method::GET, Method::POST])
        );
        let e = load(&format!("{MINIMAL}verbs = [\"GE T\"]\n")).unwrap_err();
        assert_eq!(e.line, Some(5));
        assert_eq!(e.key.as_deref(), Some("app \"php\": verbs"));
    }

    #[test]
    fn slow_request_timeout_and_instance_max_memory() {
        let c = load(MINIMAL).unwrap();
        assert_eq!(c.apps[0].slow_request_timeout, None);
        assert_eq!(c.apps[0].instance_max_memory, None);
        let c = load(&format!(
            "{MINIMAL}slow_request_timeout = \"2s\"\ninstance_max_memory = \"64MiB\"\n"
        ))
        .unwrap();
        assert_eq!(c.apps[0].slow_request_timeout, Some(Duration::from_secs(2)));
        assert_eq!(c.apps[0].instance_max_memory, Some(64 << 20));
        // 0 is off, as php-fpm's request_slowlog_timeout = 0.
        let c = load(&format!(
            "{MINIMAL}slow_request_timeout = 0\ninstance_max_memory = 0\n"
        ))
        .unwrap();
        assert_eq!(c.apps[0].slow_request_timeout, None);
        assert_eq!(c.apps[0].instance_max_memory, None);
        let e = load(&format!("{MINIMAL}slow_request_timeout = \"soon\"\n")).unwrap_err();
        assert_eq!(e.line, Some(5));
        assert_eq!(e.key.as_deref(), Some("app \"php\": slow_request_timeout"));
        let e = load(&format!("{MINIMAL}instance_max_memory = \"lots\"\n")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("app \"php\": instance_max_memory"));
        let c = load(&format!(
            "{MINIMAL}request_timeout = \"10s\"\nslow_request_timeout = \"10s\"\n"
        ))
        .unwrap();
        assert!(
            c.warnings.iter().any(|w| w
                .contains("slow_request_timeout (10s) is not shorter than request_timeout (10s)")),
            "{:?}",
            c.warnings
        );
    }

    #[test]
    fn semantic_errors_have_lines() {
        let e = load(&format!("{MINIMAL}max_instances = 2\nmin_instances = 5\n")).unwrap_err();
        assert_eq!(e.line, Some(6));
        assert_eq!(e.key.as_deref(), Some("app \"php\": min_instances"));
        // 0 is automatic sizing; its ceiling only makes sense with it.
        let c = load(&format!(
            "{MINIMAL}max_instances = 0\nmax_instances_auto_ceiling = 6\n"
        ))
        .unwrap();
        assert_eq!(
            (
                c.apps[0].max_instances,
                c.apps[0].max_instances_auto_ceiling
            ),
            (0, 6)
        );
        let e = load(&format!(
            "{MINIMAL}max_instances = 2\nmax_instances_auto_ceiling = 6\n"
        ))
        .unwrap_err();
        assert_eq!(e.line, Some(6));
        let e = load(&format!("{MINIMAL}request_timeout = \"0s\"\n")).unwrap_err();
        assert_eq!(e.line, Some(5));
        let e = load(&format!("{MINIMAL}stderr_mode = \"loud\"\n")).unwrap_err();
        assert_eq!(e.line, Some(5));
        let e = load(&format!("{MINIMAL}fallback = \"index.php\"\n")).unwrap_err();
        assert_eq!(e.line, Some(5));
        let e = load("[[app]]\nname = \"php\"\ncommand = \"x\"\nhandles = [\"*.php\", \"nope\"]\n")
            .unwrap_err();
        assert_eq!(e.line, Some(4));
        let e = load(&format!("{MINIMAL}{MINIMAL}")).unwrap_err();
        assert!(e.message.contains("duplicate"), "{e}");
        let e = load("[[app]]\ncommand = \"x\"\n").unwrap_err();
        assert!(e.message.contains("name"), "{e}");
    }

    #[test]
    fn mounts_are_checked_against_the_handles() {
        let text = "[[app]]\nname = \"trac\"\ncommand = \"x\"\nhandles = [\"/trac/*\"]\nresource_type = \"unspecified\"\nmount = \"/trac\"\n";
        assert_eq!(load(text).unwrap().apps[0].mount, "/trac");
        let c = load(&text.replace("mount = \"/trac\"", "mount = \"/\"")).unwrap();
        assert_eq!(c.apps[0].mount, "");
        for bad in [
            "mount = \"/other\"",
            "mount = \"/trac/\"",
            "mount = \"trac\"",
        ] {
            let e = load(&text.replace("mount = \"/trac\"", bad)).unwrap_err();
            assert_eq!(e.line, Some(6), "{bad}: {e}");
            assert_eq!(e.key.as_deref(), Some("app \"trac\": mount"), "{bad}");
        }
        // A file-mapped script at the site root cannot be: said at `handles`.
        let e =
            load("[[app]]\nname = \"git\"\ncommand = \"x\"\nhandles = [\"/git/*\"]\n").unwrap_err();
        assert_eq!(e.line, Some(4));
        assert!(e.message.contains("set mount = \"/git\""), "{e}");
        // With a launcher, the handles it may propose are checked later.
        let c = load("[[app]]\nname = \"d\"\nlauncher = \"django\"\nmount = \"/trac\"\n").unwrap();
        assert_eq!(c.apps[0].mount, "/trac");
    }

    #[test]
    fn env_params_and_warnings() {
        let c = load(&format!(
            "{MINIMAL}instance_max_requests = 500\n[app.env]\nPHP_FCGI_MAX_REQUESTS = 100\nFLAG = true\n[app.params]\nAPP_ENV = \"prod\"\n"
        ))
        .unwrap();
        assert_eq!(c.apps[0].env["PHP_FCGI_MAX_REQUESTS"], "100");
        assert_eq!(c.apps[0].env["FLAG"], "true");
        assert_eq!(
            c.apps[0].params,
            vec![("APP_ENV".to_string(), "prod".to_string())]
        );
        assert!(
            c.warnings
                .iter()
                .any(|w| w.contains("PHP_FCGI_MAX_REQUESTS")),
            "{:?}",
            c.warnings
        );
    }
}
