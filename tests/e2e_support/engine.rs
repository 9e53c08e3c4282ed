//! A second Docker engine on this machine, as another host's own engine: a
//! `dockerd` with its own data and exec roots, socket and containerd
//! namespace, no bridge and no iptables rules (the instances of the tests
//! that use it have no networks). Started by the test that needs it, stopped
//! when it is dropped; its data root stays, so the images it loaded are kept
//! for the next run.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Engine {
    pub socket: PathBuf,
    child: Child,
}

impl Engine {
    /// Start the engine `name` and wait until it answers.
    pub fn start(name: &str) -> Engine {
        let run = PathBuf::from(format!("/run/nd-e2e-engine-{name}"));
        let data = PathBuf::from(format!("/var/lib/nd-e2e-engine-{name}"));
        std::fs::create_dir_all(&run).expect("exec root");
        std::fs::create_dir_all(&data).expect("data root");
        // its own (empty) configuration: the host's daemon.json names the
        // host engine's data root
        let conf = run.join("daemon.json");
        std::fs::write(&conf, "{}").expect("daemon.json");
        let socket = run.join("docker.sock");
        let log = std::fs::File::create(run.join("dockerd.log")).expect("log");
        let child = Command::new("dockerd")
            .arg("--config-file")
            .arg(&conf)
            .arg("--data-root")
            .arg(&data)
            .arg("--exec-root")
            .arg(run.join("exec"))
            .arg("--pidfile")
            .arg(run.join("dockerd.pid"))
            .arg("-H")
            .arg(format!("unix://{}", socket.display()))
            .args(["--bridge", "none", "--iptables=false", "--ip6tables=false"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("dockerd");
        let e = Engine { socket, child };
        let t = Instant::now();
        while !e.answers() {
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "engine {name} did not start: see {}",
                run.join("dockerd.log").display()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        e
    }

    fn answers(&self) -> bool {
        Command::new("docker")
            .arg("-H")
            .arg(self.url())
            .args(["version", "--format", "{{.Server.Version}}"])
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// The engine's address, for `[docker] host_url` and `docker -H`.
    pub fn url(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// `docker -H <this engine> args...`; its output.
    pub fn docker(&self, args: &[&str]) -> String {
        let out = Command::new("docker")
            .arg("-H")
            .arg(self.url())
            .args(args)
            .output()
            .expect("docker");
        assert!(
            out.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The containers of `host`'s instances on this engine.
    pub fn containers_of(&self, host: &str) -> Vec<String> {
        let label = format!("label=org.openstack.nova.host={host}");
        self.docker(&["ps", "-a", "--format", "{{.Names}}", "--filter", &label])
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // SIGTERM: dockerd stops its containers and exits
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
