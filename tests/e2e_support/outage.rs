//! Outages of the lab's services, for the fault tests: a service of the
//! control plane stopped and started again with the same command, environment
//! and log as the lab started it with; RabbitMQ's application stopped and
//! started; one broker of a two-broker `transport_url` that goes away (a TCP
//! relay in front of the lab's broker, the way a cluster node dies under its
//! clients).

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::Stack;

/// `$ND_STATE/run/<name>.<ext>`: what the lab keeps of a service (its pid,
/// log, argv and environment).
fn run_file(state: &std::path::Path, name: &str, ext: &str) -> PathBuf {
    state.join(format!("run/{name}.{ext}"))
}

/// A stopped service of the lab (`$ND_STATE/run/<name>.pid`), as it ran.
/// Started again when dropped unstarted (a test that failed during the
/// outage leaves the lab whole for the next).
pub struct Stopped {
    name: String,
    argv: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    cwd: PathBuf,
    state: PathBuf,
    started: bool,
}

impl Drop for Stopped {
    fn drop(&mut self) {
        if !self.started {
            self.start();
        }
    }
}

impl Stopped {
    fn start(&mut self) {
        self.started = true;
        let log = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(run_file(&self.state, &self.name, "log"))
            .expect("log");
        let mut child = Command::new(&self.argv[0])
            .args(&self.argv[1..])
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&self.cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", self.name));
        std::fs::write(
            run_file(&self.state, &self.name, "pid"),
            format!("{}\n", child.id()),
        )
        .unwrap();
        eprintln!("{} started again (pid {})", self.name, child.id());
        // reaped when it ends (it outlives the test otherwise)
        std::thread::spawn(move || {
            let _ = child.wait();
        });
    }
}

fn nul_split(b: Vec<u8>) -> Vec<OsString> {
    b.split(|c| *c == 0)
        .filter(|a| !a.is_empty())
        .map(|a| OsString::from_vec(a.to_vec()))
        .collect()
}

fn alive(pid: i32) -> bool {
    // a zombie (a service this test process started and stopped) is gone too
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

impl Stack {
    /// Stop the lab's service `name` (SIGTERM to its process group, SIGKILL
    /// after 30 s) and return what starts it again.
    pub fn stop_service(&self, name: &str) -> Stopped {
        let pid: i32 = std::fs::read_to_string(run_file(&self.state, name, "pid"))
            .unwrap_or_else(|e| panic!("{name}: no pid file: {e}"))
            .trim()
            .parse()
            .expect("pid");
        // as the lab started it (devstack/lib/controlplane.sh nd_start writes
        // these: the process's own cmdline is rewritten by setproctitle)
        let read = |ext: &str| {
            let path = run_file(&self.state, name, ext);
            nul_split(std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        };
        let argv = read("argv");
        let env = read("environ")
            .into_iter()
            .filter_map(|kv| {
                let kv = kv.into_vec();
                let i = kv.iter().position(|c| *c == b'=')?;
                Some((
                    OsString::from_vec(kv[..i].to_vec()),
                    OsString::from_vec(kv[i + 1..].to_vec()),
                ))
            })
            .collect();
        let cwd = self.state.join("run");
        use nix::sys::signal::{kill, Signal};
        use nix::unistd::Pid;
        let _ = kill(Pid::from_raw(-pid), Signal::SIGTERM);
        let t = Instant::now();
        while alive(pid) && t.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = kill(Pid::from_raw(-pid), Signal::SIGKILL);
        while alive(pid) {
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("{name} stopped");
        Stopped {
            name: name.to_string(),
            argv,
            env,
            cwd,
            state: self.state.clone(),
            started: false,
        }
    }

    /// Start a stopped service again, in a session of its own, appending to its log.
    pub fn start_service(&self, mut s: Stopped) {
        s.start();
    }
}

/// `rabbitmqctl <args>`; panics when it fails.
pub fn rabbitmqctl(args: &[&str]) {
    let st = Command::new("rabbitmqctl")
        .args(args)
        .stdout(Stdio::null())
        .status()
        .expect("rabbitmqctl");
    assert!(st.success(), "rabbitmqctl {args:?} failed");
}

/// A TCP relay on 127.0.0.1 to `target`: one "broker" of a cluster-style
/// `transport_url`; [`Relay::down`] drops every connection through it and
/// stops listening (its port then refuses), as a node that dies does.
pub struct Relay {
    pub port: u16,
    accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    task: JoinHandle<()>,
}

/// Where a [`Relay`] forwards to.
#[derive(Clone)]
enum Upstream {
    Tcp(String),
    Unix(std::path::PathBuf),
}

impl Relay {
    /// A relay to the TCP address `target`.
    pub async fn start(target: &str) -> Self {
        Self::to(Upstream::Tcp(target.to_string())).await
    }

    /// A relay to the Unix socket `path` (a local Docker engine reached over
    /// TCP, as a remote one is).
    pub async fn to_unix(path: &str) -> Self {
        Self::to(Upstream::Unix(path.into())).await
    }

    async fn to(target: Upstream) -> Self {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = l.local_addr().unwrap().port();
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = accepted.clone();
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((mut a, _)) = l.accept().await else {
                    break;
                };
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let target = target.clone();
                conns.spawn(async move {
                    match target {
                        Upstream::Tcp(t) => {
                            if let Ok(mut b) = TcpStream::connect(&t).await {
                                let _ = tokio::io::copy_bidirectional(&mut a, &mut b).await;
                            }
                        }
                        Upstream::Unix(p) => {
                            if let Ok(mut b) = tokio::net::UnixStream::connect(&p).await {
                                let _ = tokio::io::copy_bidirectional(&mut a, &mut b).await;
                            }
                        }
                    }
                });
            }
        });
        Relay {
            port,
            accepted,
            task,
        }
    }

    /// Connections it took so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The node dies: its connections are cut (the relay's tasks dropped) and
    /// its port refuses from now on.
    pub fn down(&self) {
        self.task.abort();
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A TCP port of this machine refused (a reset for every packet, so new
/// connections are refused and open ones cut) until dropped: a service gone
/// at once, as no signal makes it go.
pub struct Refused {
    port: u16,
}

fn iptables(op: &str, port: u16) -> bool {
    let port = port.to_string();
    Command::new("iptables")
        .args([
            "-w",
            op,
            "INPUT",
            "-p",
            "tcp",
            "--dport",
            &port,
            "-j",
            "REJECT",
            "--reject-with",
            "tcp-reset",
        ])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Refused {
    pub fn port(port: u16) -> Self {
        assert!(
            iptables("-I", port),
            "iptables could not refuse port {port}"
        );
        eprintln!("port {port} refused");
        Refused { port }
    }
}

impl Drop for Refused {
    fn drop(&mut self) {
        while iptables("-D", self.port) {}
        eprintln!("port {} open again", self.port);
    }
}
