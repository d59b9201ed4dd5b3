//! Running under systemd (`Type=notify`): the notify protocol over the
//! datagram socket named by `NOTIFY_SOCKET`. The gateway says READY=1 once
//! every listener is bound and the apps' pools have been started, STOPPING=1
//! when it begins to drain on SIGTERM/SIGINT, STATUS= lines that
//! `systemctl status` shows, and WATCHDOG=1 at half of `WATCHDOG_USEC`
//! when the unit sets `WatchdogSec=`. Without `NOTIFY_SOCKET` every call
//! here does nothing; a socket that cannot be reached is logged once and
//! never stops the gateway (systemd then times the start out itself).
//!
//! READY=1 does not wait for `min_instances` to be up: a request that comes
//! before an instance is ready waits in its pool's queue, as it would on a
//! busy pool, and an app whose program cannot start must not hold the whole
//! gateway, with its other apps and static files, in "activating" until
//! `TimeoutStartSec` kills it. A bound listener is what a client needs.
//!
//! The sd-notify crate formats the messages, checks `WATCHDOG_PID` and
//! sends to socket paths; it does not know abstract names (`@name`, which
//! systemd uses in containers and tests), so those are sent here with the
//! standard library's abstract-address support.
//!
//! Reload (`Type=notify-reload`) will call [`reloading`] when it begins and
//! [`ready`] again once the new configuration serves.

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sd_notify::NotifyState;
use tracing::{debug, warn};

/// The variable systemd sets to the socket it listens on.
const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// Set after the first failed send, so an unreachable socket is logged once
/// and not at every watchdog ping.
static WARNED: AtomicBool = AtomicBool::new(false);

/// Tells the service manager the gateway serves on `addrs`.
pub fn ready(addrs: &[SocketAddr]) {
    let status = format!("serving on {}", join(addrs));
    notify(&[NotifyState::Ready, NotifyState::Status(&status)]);
}

/// Tells the service manager the gateway is draining and will stop.
pub fn stopping() {
    notify(&[
        NotifyState::Stopping,
        NotifyState::Status("draining in-flight requests"),
    ]);
}

/// A STATUS= line for `systemctl status`.
pub fn status(text: &str) {
    notify(&[NotifyState::Status(text)]);
}

/// A configuration reload begins: RELOADING=1 with the
/// monotonic time `Type=notify-reload` requires; [`ready`] ends it.
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => notify(&[NotifyState::Reloading, now]),
        Err(e) => warn!(error = %e, "cannot read the monotonic clock for RELOADING=1"),
    }
}

/// Pings the watchdog at half its interval for as long as the runtime runs,
/// if the unit asked for one (`WatchdogSec=` sets `WATCHDOG_USEC` and
/// `WATCHDOG_PID`). The ping comes from the runtime that serves requests,
/// so a wedged runtime stops it.
pub fn spawn_watchdog() -> Option<tokio::task::JoinHandle<()>> {
    let interval = sd_notify::watchdog_enabled()?;
    let half = (interval / 2).max(Duration::from_millis(1));
    debug!(
        ?interval,
        "systemd watchdog enabled; pinging at half the interval"
    );
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(half);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            notify(&[NotifyState::Watchdog]);
        }
    }))
}

/// Sends `states` as one datagram, if there is a service manager.
fn notify(states: &[NotifyState]) {
    let Some(socket) = std::env::var_os(NOTIFY_SOCKET) else {
        return;
    };
    let result = match abstract_name(&socket) {
        Some(name) => send_abstract(name, message(states).as_bytes()),
        None => sd_notify::notify(states),
    };
    if let Err(e) = result
        && !WARNED.swap(true, Ordering::Relaxed)
    {
        warn!(
            socket = %socket.to_string_lossy(),
            error = %e,
            "cannot notify the service manager (NOTIFY_SOCKET); serving anyway"
        );
    }
}

/// The name of an abstract socket (`@name`), without its `@`.
fn abstract_name(socket: &OsStr) -> Option<&[u8]> {
    socket.as_bytes().strip_prefix(b"@")
}

/// The datagram: one `KEY=VALUE` line per state, as sd-notify writes them.
fn message(states: &[NotifyState]) -> String {
    states.iter().map(|s| format!("{s}\n")).collect()
}

fn send_abstract(name: &[u8], message: &[u8]) -> std::io::Result<()> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let addr = SocketAddr::from_abstract_name(name)?;
    let sent = UnixDatagram::unbound()?.send_to_addr(message, &addr)?;
    if sent == message.len() {
        Ok(())
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::WriteZero,
            "the notify datagram was cut short",
        ))
    }
}

fn join(addrs: &[SocketAddr]) -> String {
    addrs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abstract_names_start_with_at() {
        assert_eq!(
            abstract_name(OsStr::new("@/org/x/notify")),
            Some(&b"/org/x/notify"[..])
        );
        assert_eq!(abstract_name(OsStr::new("/run/systemd/notify")), None);
    }

    #[test]
    fn one_line_per_state() {
        assert_eq!(
            message(&[NotifyState::Ready, NotifyState::Status("serving on a")]),
            "READY=1\nSTATUS=serving on a\n"
        );
    }

    #[test]
    fn addresses_are_listed() {
        let a = SocketAddr::from(([127, 0, 0, 1], 80));
        let b = SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 8080));
        assert_eq!(join(&[a, b]), "127.0.0.1:80, [::1]:8080");
    }
}
