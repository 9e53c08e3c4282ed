//! Our daemon for one test, under a host name of the test's choosing; stopped
//! (SIGTERM, then SIGKILL after 20 s) when dropped.

use std::process::Child;
use std::time::{Duration, Instant};

use super::Stack;

pub struct Daemon {
    child: Option<Child>,
    pub host: String,
}

impl Daemon {
    /// Start it with the lab's compute config for `host` (plus `extra` lines)
    /// and wait until Nova and placement know it.
    pub async fn start(stack: &Stack, host: &str, extra: &str) -> Self {
        let conf = stack.compute_conf(host, extra);
        Self::start_with_conf(stack, host, &conf).await
    }

    /// Start it with the config file `conf` (one the test wrote).
    pub async fn start_with_conf(stack: &Stack, host: &str, conf: &std::path::PathBuf) -> Self {
        // owned by the Daemon before the wait, so that a wait that panics
        // (a 503 from the API, say) still stops it when the test unwinds
        let mut d = Daemon {
            child: Some(stack.start_daemon(host, conf)),
            host: host.to_string(),
        };
        if let Some(child) = d.child.as_mut() {
            stack.wait_registered(host, child).await;
        }
        d
    }

    /// Start it without waiting for Nova to see it up (a host still forced
    /// down); [`Self::wait_up`] waits later.
    pub fn start_forced_down(stack: &Stack, host: &str, extra: &str) -> Self {
        let conf = stack.compute_conf(host, extra);
        Daemon {
            child: Some(stack.start_daemon(host, &conf)),
            host: host.to_string(),
        }
    }

    /// Wait until Nova has it up, as [`Self::start`] does.
    pub async fn wait_up(&mut self, stack: &Stack) {
        let host = self.host.clone();
        if let Some(child) = self.child.as_mut() {
            stack.wait_registered(&host, child).await;
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// The fields `names` of its `/proc/<pid>/status` (`VmRSS:`, in kB;
    /// `Threads:`), read at once.
    pub fn status(&self, names: &[&str]) -> Vec<f64> {
        let pid = self.pid().expect("the daemon runs");
        let s = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the daemon runs");
        names
            .iter()
            .map(|name| {
                s.lines()
                    .find(|l| l.starts_with(name))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
            })
            .collect()
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        if let Some(pid) = self.pid() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig);
        }
    }

    /// SIGKILL: a crash.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGCONT,
            );
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(20) {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}
