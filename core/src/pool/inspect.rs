//! What a process is doing, read from /proc without ptrace: its scheduler
//! state (`stat`), the kernel function it sleeps in (`wchan`), the system
//! call it is in (`syscall`), and where its sockets lead (`fd` →
//! `socket:[inode]` → `net/tcp`, `net/tcp6`, `net/unix`), for the
//! slow-request log; and its memory (`status`), for `instance_max_memory`.
//!
//! php-fpm's slowlog attaches with ptrace to read the PHP stack, which
//! containers often forbid; these files only need the access a parent has
//! to its own child (`syscall` and `fd` need "ptrace read" rights, not an
//! attach), and whatever cannot be read is left out of the description.
//!
//! The parsers are pure functions over the files' text, tested below; the
//! reader ([`inspect`], [`memory`]) is a thin layer of file reads. Nothing
//! here knows the pool.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The system call a process is in, as /proc/PID/syscall shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Syscall {
    /// It is running (on a CPU), not in a system call.
    Running,
    /// It is blocked, but not in a system call (e.g. a page fault).
    Outside,
    /// In system call `nr` with these arguments.
    In { nr: u64, args: [u64; 6] },
}

/// One TCP socket of /proc/PID/net/tcp or tcp6.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InetSocket {
    pub inode: u64,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// The kernel's TCP state number (1 established, 10 listen...).
    pub state: u8,
}

/// One Unix socket of /proc/PID/net/unix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixSocket {
    pub inode: u64,
    /// The path it is bound to (or its peer's, for an accepted one).
    pub path: Option<String>,
}

/// What an fd of the process is, as far as the description goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Tcp(InetSocket),
    Unix(UnixSocket),
    /// A socket of another family (UDP, netlink...), by inode.
    OtherSocket(u64),
    /// A file, pipe or anything else: the link text (`/var/x.db`, `pipe:[7]`).
    Other(String),
}

/// Everything read about a process at one moment.
#[derive(Debug, Clone, Default)]
pub struct Activity {
    /// The scheduler state letter of /proc/PID/stat (`S`, `R`, `D`...).
    pub state: Option<char>,
    /// The kernel function it sleeps in (absent when hidden or running).
    pub wchan: Option<String>,
    pub syscall: Option<Syscall>,
    /// The fd the system call is about (its first argument, or the one
    /// pollfd of a `poll` on a single fd), and what it is.
    pub syscall_fd: Option<(u64, Target)>,
    /// Its TCP connections (not listening ones).
    pub tcp: Vec<InetSocket>,
}

/// The state letter of /proc/PID/stat: the field after the command name,
/// which is in parentheses and may itself hold spaces and parentheses.
pub fn parse_stat_state(stat: &str) -> Option<char> {
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().next()?.chars().next()
}

/// The state letter in words.
pub fn state_name(state: char) -> &'static str {
    match state {
        'R' => "running",
        'S' => "sleeping",
        'D' => "in uninterruptible wait (usually disk I/O)",
        'T' => "stopped",
        't' => "stopped by a tracer",
        'Z' => "a zombie",
        'X' => "dead",
        'I' => "idle",
        _ => "in an unknown state",
    }
}

/// /proc/PID/syscall: `running`, `-1 SP PC` (blocked outside a system
/// call), or the number, six arguments, SP and PC, in hex.
pub fn parse_syscall(text: &str) -> Option<Syscall> {
    let mut fields = text.split_whitespace();
    let first = fields.next()?;
    if first == "running" {
        return Some(Syscall::Running);
    }
    if first == "-1" {
        return Some(Syscall::Outside);
    }
    let nr = first.parse().ok()?;
    let mut args = [0u64; 6];
    for arg in &mut args {
        *arg = parse_hex(fields.next()?)?;
    }
    Some(Syscall::In { nr, args })
}

fn parse_hex(text: &str) -> Option<u64> {
    u64::from_str_radix(text.trim_start_matches("0x"), 16).ok()
}

/// The names of the system calls a blocked request is usually in, and
/// whether their first argument is an fd.
#[cfg(target_arch = "x86_64")]
const SYSCALLS: &[(u64, &str, bool)] = &[
    (0, "read", true),
    (1, "write", true),
    (3, "close", true),
    (7, "poll", false),
    (17, "pread64", true),
    (18, "pwrite64", true),
    (19, "readv", true),
    (20, "writev", true),
    (23, "select", false),
    (34, "pause", false),
    (35, "nanosleep", false),
    (40, "sendfile", true),
    (42, "connect", true),
    (43, "accept", true),
    (44, "sendto", true),
    (45, "recvfrom", true),
    (46, "sendmsg", true),
    (47, "recvmsg", true),
    (61, "wait4", false),
    (73, "flock", true),
    (74, "fsync", true),
    (202, "futex", false),
    (230, "clock_nanosleep", false),
    (232, "epoll_wait", true),
    (247, "waitid", false),
    (257, "openat", false),
    (270, "pselect6", false),
    (271, "ppoll", false),
    (281, "epoll_pwait", true),
    (288, "accept4", true),
    (441, "epoll_pwait2", true),
];

/// aarch64 uses the generic table (no `poll`, `select` or `epoll_wait`:
/// their `p` variants only).
#[cfg(target_arch = "aarch64")]
const SYSCALLS: &[(u64, &str, bool)] = &[
    (22, "epoll_pwait", true),
    (32, "flock", true),
    (56, "openat", false),
    (57, "close", true),
    (63, "read", true),
    (64, "write", true),
    (65, "readv", true),
    (66, "writev", true),
    (67, "pread64", true),
    (68, "pwrite64", true),
    (71, "sendfile", true),
    (72, "pselect6", false),
    (73, "ppoll", false),
    (82, "fsync", true),
    (95, "waitid", false),
    (98, "futex", false),
    (101, "nanosleep", false),
    (115, "clock_nanosleep", false),
    (202, "accept", true),
    (203, "connect", true),
    (206, "sendto", true),
    (207, "recvfrom", true),
    (211, "sendmsg", true),
    (212, "recvmsg", true),
    (242, "accept4", true),
    (260, "wait4", false),
    (441, "epoll_pwait2", true),
];

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const SYSCALLS: &[(u64, &str, bool)] = &[];

/// A system call's name, when it is one of the common ones.
pub fn syscall_name(nr: u64) -> Option<&'static str> {
    SYSCALLS.iter().find(|s| s.0 == nr).map(|s| s.1)
}

/// Whether the system call's first argument is an fd.
fn takes_fd(nr: u64) -> bool {
    SYSCALLS.iter().any(|s| s.0 == nr && s.2)
}

/// Whether it waits on an array of `struct pollfd` (first argument, its
/// length second).
fn is_poll(nr: u64) -> bool {
    matches!(syscall_name(nr), Some("poll" | "ppoll"))
}

/// The inode of an fd link that is a socket (`socket:[12345]`).
pub fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// /proc/PID/net/tcp (`v6` false) or tcp6: one socket a line after the
/// header, addresses as the kernel's hex of the address words in host
/// byte order and the port in plain hex.
pub fn parse_tcp_table(text: &str, v6: bool) -> Vec<InetSocket> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            Some(InetSocket {
                local: parse_inet_addr(fields.get(1)?, v6)?,
                remote: parse_inet_addr(fields.get(2)?, v6)?,
                state: u8::from_str_radix(fields.get(3)?, 16).ok()?,
                inode: fields.get(9)?.parse().ok()?,
            })
        })
        .collect()
}

/// `0100007F:0CEA` → 127.0.0.1:3306; IPv6 as four such words.
fn parse_inet_addr(text: &str, v6: bool) -> Option<SocketAddr> {
    let (addr, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| -> Option<[u8; 4]> {
        let hex = addr.get(i * 8..i * 8 + 8)?;
        Some(u32::from_str_radix(hex, 16).ok()?.to_ne_bytes())
    };
    let ip = if v6 {
        if addr.len() != 32 {
            return None;
        }
        let mut bytes = [0u8; 16];
        for i in 0..4 {
            bytes[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
        }
        let ip = Ipv6Addr::from(bytes);
        // A v4 peer of a dual-stack socket reads better as v4.
        ip.to_ipv4_mapped().map_or(IpAddr::V6(ip), IpAddr::V4)
    } else {
        if addr.len() != 8 {
            return None;
        }
        IpAddr::V4(Ipv4Addr::from(word(0)?))
    };
    Some(SocketAddr::new(ip, port))
}

/// /proc/PID/net/unix: `Num RefCount Protocol Flags Type St Inode [Path]`.
pub fn parse_unix_table(text: &str) -> Vec<UnixSocket> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let inode = fields.nth(6)?.parse().ok()?;
            let path = fields.next().map(str::to_string);
            Some(UnixSocket { inode, path })
        })
        .collect()
}

/// The kernel's TCP state number in words.
fn tcp_state(state: u8) -> &'static str {
    match state {
        1 => "established",
        2 => "connecting (SYN sent)",
        3 => "SYN received",
        4 => "closing (FIN wait 1)",
        5 => "closing (FIN wait 2)",
        6 => "TIME_WAIT",
        7 => "closed",
        8 => "closed by the peer (CLOSE_WAIT)",
        9 => "closing (LAST_ACK)",
        10 => "listening",
        11 => "closing",
        _ => "in an unknown state",
    }
}

/// The fds of `struct pollfd fds[n]` (8 bytes each: fd, events, revents).
pub fn pollfd_fds(raw: &[u8]) -> Vec<i32> {
    raw.chunks_exact(8)
        .filter_map(|p| p[..4].try_into().ok().map(i32::from_ne_bytes))
        .collect()
}

impl Target {
    /// What the fd is, for a sentence: "a TCP connection to 127.0.0.1:3306".
    pub fn describe(&self) -> String {
        match self {
            Target::Tcp(s) if s.state == 10 => format!("a TCP socket listening on {}", s.local),
            Target::Tcp(s) if s.state == 1 => format!("a TCP connection to {}", s.remote),
            Target::Tcp(s) => format!("a TCP connection to {} ({})", s.remote, tcp_state(s.state)),
            Target::Unix(UnixSocket {
                path: Some(path), ..
            }) => format!("a Unix socket ({path})"),
            Target::Unix(_) => "a Unix socket".to_string(),
            Target::OtherSocket(inode) => format!("a socket (inode {inode})"),
            Target::Other(link) => link.clone(),
        }
    }
}

impl Activity {
    /// One sentence: "blocked in read() on a TCP connection to
    /// 127.0.0.1:3306 (sleeping, wchan wait_woken); TCP connections: ...".
    pub fn describe(&self) -> String {
        let mut out = match &self.syscall {
            Some(Syscall::Running) => "running on a CPU (not in a system call)".to_string(),
            Some(Syscall::Outside) => "blocked outside a system call".to_string(),
            Some(Syscall::In { nr, .. }) => match syscall_name(*nr) {
                Some(name) => format!("blocked in {name}()"),
                None => format!("blocked in system call {nr}"),
            },
            None => "doing something /proc/PID/syscall does not show".to_string(),
        };
        if let Some((fd, target)) = &self.syscall_fd {
            let _ = write!(out, " on fd {fd}, {}", target.describe());
        }
        let mut how = Vec::new();
        if let Some(state) = self.state {
            how.push(state_name(state).to_string());
        }
        if let Some(wchan) = &self.wchan {
            how.push(format!("wchan {wchan}"));
        }
        if !how.is_empty() {
            let _ = write!(out, " ({})", how.join(", "));
        }
        let peers: Vec<String> = self
            .tcp
            .iter()
            .map(|s| format!("{} → {} {}", s.local, s.remote, tcp_state(s.state)))
            .collect();
        if !peers.is_empty() {
            let _ = write!(out, "; TCP connections: {}", peers.join(", "));
        }
        out
    }
}

/// Reads what process `pid` is doing now. Whatever cannot be read (it
/// exited, the kernel hides it) is left out.
pub fn inspect(pid: u32) -> Activity {
    let proc_file = |name: &str| std::fs::read_to_string(format!("/proc/{pid}/{name}")).ok();
    let tcp: Vec<InetSocket> = ["net/tcp", "net/tcp6"]
        .iter()
        .flat_map(|name| {
            proc_file(name)
                .map(|text| parse_tcp_table(&text, name.ends_with('6')))
                .unwrap_or_default()
        })
        .collect();
    let unix = proc_file("net/unix")
        .map(|text| parse_unix_table(&text))
        .unwrap_or_default();
    let fds = socket_fds(pid);
    let target_of = |fd: u64| -> Option<Target> {
        let link = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).ok()?;
        let link = link.to_string_lossy();
        Some(target(&link, &tcp, &unix))
    };
    let syscall = proc_file("syscall").and_then(|t| parse_syscall(&t));
    let syscall_fd = match &syscall {
        Some(Syscall::In { nr, args }) if takes_fd(*nr) => target_of(args[0]).map(|t| (args[0], t)),
        Some(Syscall::In { nr, args }) if is_poll(*nr) && args[1] == 1 => {
            polled_fd(pid, args[0]).and_then(|fd| target_of(fd).map(|t| (fd, t)))
        }
        _ => None,
    };
    let wchan = proc_file("wchan").filter(|w| !w.is_empty() && w != "0");
    Activity {
        state: proc_file("stat").and_then(|s| parse_stat_state(&s)),
        wchan,
        syscall,
        syscall_fd,
        tcp: tcp
            .into_iter()
            .filter(|s| s.state != 10 && fds.contains(&s.inode))
            .collect(),
    }
}

/// What an fd link names, with the socket tables to look sockets up in.
fn target(link: &str, tcp: &[InetSocket], unix: &[UnixSocket]) -> Target {
    let Some(inode) = socket_inode(link) else {
        return Target::Other(link.to_string());
    };
    if let Some(s) = tcp.iter().find(|s| s.inode == inode) {
        return Target::Tcp(s.clone());
    }
    if let Some(s) = unix.iter().find(|s| s.inode == inode) {
        return Target::Unix(s.clone());
    }
    Target::OtherSocket(inode)
}

/// The inodes of the sockets process `pid` holds.
fn socket_fds(pid: u32) -> Vec<u64> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    dir.filter_map(|entry| {
        let link = std::fs::read_link(entry.ok()?.path()).ok()?;
        socket_inode(&link.to_string_lossy())
    })
    .collect()
}

/// The fd of a `poll` on one fd: its `struct pollfd`, read from the
/// process's memory at `address` (/proc/PID/mem, which a parent may read
/// without attaching).
fn polled_fd(pid: u32, address: u64) -> Option<u64> {
    use std::os::unix::fs::FileExt;
    let mem = std::fs::File::open(format!("/proc/{pid}/mem")).ok()?;
    let mut raw = [0u8; 8];
    mem.read_exact_at(&mut raw, address).ok()?;
    let fd = *pollfd_fds(&raw).first()?;
    u64::try_from(fd).ok()
}

/// A process's memory, from /proc/PID/status, in KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    /// Resident now (`VmRSS`).
    pub rss_kib: u64,
    /// The most it was ever resident (`VmHWM`, the high-water mark).
    pub peak_kib: u64,
}

/// `VmRSS` and `VmHWM` of /proc/PID/status (in kB whatever the page size).
pub fn parse_memory(status: &str) -> Option<Memory> {
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        line[name.len()..].split_whitespace().next()?.parse().ok()
    };
    Some(Memory {
        rss_kib: field("VmRSS:")?,
        peak_kib: field("VmHWM:")?,
    })
}

/// Process `pid`'s memory now (`None` once it is gone).
pub fn memory(pid: u32) -> Option<Memory> {
    parse_memory(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn state_is_read_after_the_last_parenthesis() {
        assert_eq!(
            parse_stat_state("1234 (php-cgi) S 1 1234 1234 0 -1"),
            Some('S')
        );
        // A command name may hold spaces and parentheses.
        assert_eq!(parse_stat_state("7 (a) b (c)) D 1 7"), Some('D'));
        assert_eq!(parse_stat_state("garbage"), None);
        assert_eq!(state_name('S'), "sleeping");
    }

    #[test]
    fn syscall_lines_are_parsed() {
        let line = "0 0x3 0x7ffc1e0 0x2000 0x0 0x0 0x0 0x7ffc1d0 0x7f12345\n";
        assert_eq!(
            parse_syscall(line),
            Some(Syscall::In {
                nr: 0,
                args: [3, 0x7ffc1e0, 0x2000, 0, 0, 0]
            })
        );
        assert_eq!(parse_syscall("running\n"), Some(Syscall::Running));
        assert_eq!(
            parse_syscall("-1 0x7ffc1d0 0x7f12345\n"),
            Some(Syscall::Outside)
        );
        assert_eq!(parse_syscall("0 0x3\n"), None);
        assert_eq!(parse_syscall(""), None);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn x86_64_names() {
        assert_eq!(syscall_name(0), Some("read"));
        assert_eq!(syscall_name(7), Some("poll"));
        assert_eq!(syscall_name(45), Some("recvfrom"));
        assert_eq!(syscall_name(202), Some("futex"));
        assert_eq!(syscall_name(230), Some("clock_nanosleep"));
        assert_eq!(syscall_name(9999), None);
        assert!(takes_fd(0) && takes_fd(42) && !takes_fd(7) && !takes_fd(35));
        assert!(is_poll(7) && is_poll(271) && !is_poll(0));
    }

    #[cfg(target_arch = "aarch64")]
    #[test]
    fn aarch64_names() {
        assert_eq!(syscall_name(63), Some("read"));
        assert_eq!(syscall_name(73), Some("ppoll"));
        assert_eq!(syscall_name(207), Some("recvfrom"));
        assert!(takes_fd(63) && !takes_fd(101));
    }

    #[test]
    fn every_name_is_listed_once() {
        for (i, a) in SYSCALLS.iter().enumerate() {
            assert!(SYSCALLS[i + 1..].iter().all(|b| a.0 != b.0 && a.1 != b.1));
        }
    }

    #[test]
    fn socket_links_give_inodes() {
        assert_eq!(socket_inode("socket:[40123]"), Some(40123));
        assert_eq!(socket_inode("pipe:[40123]"), None);
        assert_eq!(socket_inode("/tmp/x"), None);
    }

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:0CEA 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 40001 1 0000000000000000 100 0 0 10 0
   1: 0100007F:A1B2 0100007F:0CEA 01 00000000:00000000 00:00000000 00000000  1000        0 40002 1 0000000000000000 20 4 30 10 -1
";

    #[cfg(target_endian = "little")]
    #[test]
    fn tcp_tables_are_parsed() {
        let sockets = parse_tcp_table(TCP, false);
        assert_eq!(sockets.len(), 2);
        assert_eq!(sockets[0].local, "127.0.0.1:3306".parse().unwrap());
        assert_eq!(sockets[0].state, 10);
        assert_eq!(sockets[1].inode, 40002);
        assert_eq!(sockets[1].local, "127.0.0.1:41394".parse().unwrap());
        assert_eq!(sockets[1].remote, "127.0.0.1:3306".parse().unwrap());
        let v6 = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:1F90 0000000000000000FFFF00000100007F:C350 01 00000000:00000000 00:00000000 00000000  1000        0 50001 1
   1: 00000000000000000000000001000000:1F91 00000000000000000000000001000000:C351 01 00000000:00000000 00:00000000 00000000  1000        0 50002 1
";
        let sockets = parse_tcp_table(v6, true);
        assert_eq!(sockets[0].local, "[::1]:8080".parse().unwrap());
        // A v4-mapped peer is shown as v4.
        assert_eq!(sockets[0].remote, "127.0.0.1:50000".parse().unwrap());
        assert_eq!(sockets[1].remote, "[::1]:50001".parse().unwrap());
        // Lines that are not sockets are skipped, not a panic.
        assert!(parse_tcp_table("header\n 0: zz:zz\n\n", false).is_empty());
    }

    #[test]
    fn unix_tables_are_parsed() {
        let text = "Num       RefCount Protocol Flags    Type St Inode Path
0000000000000000: 00000002 00000000 00010000 0001 01 60001 /run/app/1.sock
0000000000000000: 00000003 00000000 00000000 0001 03 60002
";
        assert_eq!(
            parse_unix_table(text),
            vec![
                UnixSocket {
                    inode: 60001,
                    path: Some("/run/app/1.sock".into())
                },
                UnixSocket {
                    inode: 60002,
                    path: None
                },
            ]
        );
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn a_blocked_read_is_described_with_its_peer() {
        let tcp = parse_tcp_table(TCP, false);
        let activity = Activity {
            state: Some('S'),
            wchan: Some("wait_woken".into()),
            syscall: Some(Syscall::In {
                nr: SYSCALLS.iter().find(|s| s.1 == "read").unwrap().0,
                args: [5, 0, 0, 0, 0, 0],
            }),
            syscall_fd: Some((5, target("socket:[40002]", &tcp, &[]))),
            tcp: vec![tcp[1].clone()],
        };
        assert_eq!(
            activity.describe(),
            "blocked in read() on fd 5, a TCP connection to 127.0.0.1:3306 (sleeping, wchan wait_woken); \
             TCP connections: 127.0.0.1:41394 → 127.0.0.1:3306 established"
        );
        assert_eq!(
            target("/var/lib/x.db", &tcp, &[]).describe(),
            "/var/lib/x.db"
        );
        assert_eq!(
            target("socket:[40001]", &tcp, &[]).describe(),
            "a TCP socket listening on 127.0.0.1:3306"
        );
        assert_eq!(
            target("socket:[9]", &tcp, &[]).describe(),
            "a socket (inode 9)"
        );
        assert_eq!(
            Activity::default().describe(),
            "doing something /proc/PID/syscall does not show"
        );
    }

    #[test]
    fn pollfds_and_memory() {
        let mut raw = Vec::new();
        raw.extend_from_slice(&7i32.to_ne_bytes());
        raw.extend_from_slice(&[1, 0, 0, 0]);
        assert_eq!(pollfd_fds(&raw), vec![7]);
        let status = "Name:\tphp-cgi\nVmHWM:\t   90112 kB\nVmRSS:\t   20480 kB\n";
        assert_eq!(
            parse_memory(status),
            Some(Memory {
                rss_kib: 20480,
                peak_kib: 90112
            })
        );
        assert_eq!(parse_memory("Name:\tx\n"), None);
    }

    #[test]
    fn our_own_process_can_be_read() {
        let me = std::process::id();
        let activity = inspect(me);
        assert!(activity.state.is_some());
        assert!(memory(me).unwrap().peak_kib > 0);
        assert_eq!(memory(u32::MAX), None);
    }
}
