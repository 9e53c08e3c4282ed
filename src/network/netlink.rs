//! rtnetlink operations on the host and inside a container's network namespace.
//!
//! A netlink socket belongs to the namespace it was opened in, so work inside a
//! container runs on a dedicated OS thread that `setns`es into
//! `/proc/<pid>/ns/net` and opens its own connection there (driven by a
//! current-thread runtime); the calling task's thread never changes namespace.

use std::fs::File;
use std::future::Future;
use std::net::IpAddr;
use std::os::fd::AsRawFd;

use futures_util::TryStreamExt;
use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use nix::sched::CloneFlags;
use rtnetlink::Handle;
use tracing::debug;

use super::NetworkError;

pub const EEXIST: i32 = 17;
pub const ENODEV: i32 = 19;
pub const ENOENT: i32 = 2;
pub const ESRCH: i32 = 3;
pub const EADDRNOTAVAIL: i32 = 99;

/// The errno of a netlink error reply.
pub fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.code.map(|c| c.get().abs()),
        _ => None,
    }
}

fn nl_err(op: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> NetworkError {
    let op = op.into();
    move |e| NetworkError::Netlink {
        op,
        reason: match errno(&e) {
            Some(n) => format!("{} (errno {n})", std::io::Error::from_raw_os_error(n)),
            None => e.to_string(),
        },
    }
}

/// What we need to know of a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub master: Option<u32>,
    pub mac: Option<Vec<u8>>,
    pub mtu: Option<u32>,
}

impl Link {
    fn from_msg(m: &LinkMessage) -> Self {
        let mut l = Link {
            index: m.header.index,
            name: String::new(),
            master: None,
            mac: None,
            mtu: None,
        };
        for a in &m.attributes {
            match a {
                LinkAttribute::IfName(n) => l.name = n.clone(),
                LinkAttribute::Controller(c) => l.master = Some(*c),
                LinkAttribute::Address(a) => l.mac = Some(a.clone()),
                LinkAttribute::Mtu(m) => l.mtu = Some(*m),
                _ => {}
            }
        }
        l
    }
}

/// One rtnetlink connection, in the namespace it was opened in.
pub struct Netlink {
    handle: Handle,
}

impl Netlink {
    /// Open a connection in the current thread's network namespace; needs a tokio runtime.
    pub fn connect() -> Result<Self, NetworkError> {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(|e| NetworkError::Netlink {
            op: "open a netlink socket".into(),
            reason: e.to_string(),
        })?;
        tokio::spawn(conn);
        Ok(Netlink { handle })
    }

    pub async fn link(&self, name: &str) -> Result<Option<Link>, NetworkError> {
        let mut req = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        match req.try_next().await {
            Ok(Some(m)) => Ok(Some(Link::from_msg(&m))),
            Ok(None) => Ok(None),
            Err(e) if matches!(errno(&e), Some(ENODEV) | Some(ENOENT)) => Ok(None),
            Err(e) => Err(nl_err(format!("look up link {name}"))(e)),
        }
    }

    pub async fn links(&self) -> Result<Vec<Link>, NetworkError> {
        let msgs: Vec<LinkMessage> = self
            .handle
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(nl_err("list links"))?;
        Ok(msgs.iter().map(Link::from_msg).collect())
    }

    async fn require(&self, name: &str) -> Result<Link, NetworkError> {
        self.link(name).await?.ok_or_else(|| NetworkError::Netlink {
            op: format!("look up link {name}"),
            reason: "no such device".into(),
        })
    }

    /// Delete a link if it exists; true when something was deleted.
    pub async fn delete(&self, name: &str) -> Result<bool, NetworkError> {
        let Some(l) = self.link(name).await? else {
            return Ok(false);
        };
        match self.handle.link().del(l.index).execute().await {
            Ok(()) => {
                debug!(link = name, "deleted link");
                Ok(true)
            }
            Err(e) if matches!(errno(&e), Some(ENODEV) | Some(ENOENT)) => Ok(false),
            Err(e) => Err(nl_err(format!("delete link {name}"))(e)),
        }
    }

    /// Create a veth pair (fails with EEXIST when a name is taken).
    pub async fn add_veth(&self, name: &str, peer: &str) -> Result<(), NetworkError> {
        self.handle
            .link()
            .add()
            .veth(name.to_string(), peer.to_string())
            .execute()
            .await
            .map_err(nl_err(format!("create veth pair {name}/{peer}")))
    }

    /// Create a Linux bridge unless it exists; returns it.
    pub async fn ensure_bridge(&self, name: &str) -> Result<Link, NetworkError> {
        if self.link(name).await?.is_none() {
            match self
                .handle
                .link()
                .add()
                .bridge(name.to_string())
                .execute()
                .await
            {
                Ok(()) => debug!(bridge = name, "created bridge"),
                Err(e) if errno(&e) == Some(EEXIST) => {}
                Err(e) => return Err(nl_err(format!("create bridge {name}"))(e)),
            }
        }
        let l = self.require(name).await?;
        self.set_up(l.index, name).await?;
        Ok(l)
    }

    /// Create a VLAN interface `name` on `parent` unless it exists.
    pub async fn ensure_vlan(
        &self,
        name: &str,
        parent: &str,
        vlan: u16,
    ) -> Result<Link, NetworkError> {
        if self.link(name).await?.is_none() {
            let p = self.require(parent).await?;
            match self
                .handle
                .link()
                .add()
                .vlan(name.to_string(), p.index, vlan)
                .execute()
                .await
            {
                Ok(()) => debug!(link = name, parent, vlan, "created VLAN interface"),
                Err(e) if errno(&e) == Some(EEXIST) => {}
                Err(e) => {
                    return Err(nl_err(format!(
                        "create VLAN {vlan} interface {name} on {parent}"
                    ))(e))
                }
            }
        }
        let l = self.require(name).await?;
        self.set_up(l.index, name).await?;
        Ok(l)
    }

    pub async fn set_up(&self, index: u32, name: &str) -> Result<(), NetworkError> {
        self.handle
            .link()
            .set(index)
            .up()
            .execute()
            .await
            .map_err(nl_err(format!("set {name} up")))
    }

    pub async fn set_down(&self, index: u32, name: &str) -> Result<(), NetworkError> {
        self.handle
            .link()
            .set(index)
            .down()
            .execute()
            .await
            .map_err(nl_err(format!("set {name} down")))
    }

    pub async fn set_mtu(&self, index: u32, name: &str, mtu: u32) -> Result<(), NetworkError> {
        self.handle
            .link()
            .set(index)
            .mtu(mtu)
            .execute()
            .await
            .map_err(nl_err(format!("set MTU {mtu} on {name}")))
    }

    pub async fn set_master(
        &self,
        index: u32,
        name: &str,
        master: u32,
    ) -> Result<(), NetworkError> {
        self.handle
            .link()
            .set(index)
            .controller(master)
            .execute()
            .await
            .map_err(nl_err(format!("add {name} to bridge (index {master})")))
    }

    pub async fn set_name(&self, index: u32, from: &str, to: &str) -> Result<(), NetworkError> {
        self.handle
            .link()
            .set(index)
            .name(to.to_string())
            .execute()
            .await
            .map_err(nl_err(format!("rename {from} to {to}")))
    }

    pub async fn set_mac(&self, index: u32, name: &str, mac: &[u8; 6]) -> Result<(), NetworkError> {
        self.handle
            .link()
            .set(index)
            .address(mac.to_vec())
            .execute()
            .await
            .map_err(nl_err(format!("set MAC on {name}")))
    }

    /// Move a link into the network namespace open as `ns`.
    pub async fn move_to_netns(
        &self,
        index: u32,
        name: &str,
        ns: &File,
    ) -> Result<(), NetworkError> {
        self.handle
            .link()
            .set(index)
            .setns_by_fd(ns.as_raw_fd())
            .execute()
            .await
            .map_err(nl_err(format!(
                "move {name} into the container's network namespace"
            )))
    }

    /// Add (or refresh) an address.
    pub async fn replace_address(
        &self,
        index: u32,
        name: &str,
        addr: IpAddr,
        plen: u8,
    ) -> Result<(), NetworkError> {
        self.handle
            .address()
            .add(index, addr, plen)
            .replace()
            .execute()
            .await
            .map_err(nl_err(format!("add address {addr}/{plen} to {name}")))
    }

    /// Add a route unless the same destination is already routed (a first
    /// interface's default route is never taken over by a later one).
    pub async fn add_route(
        &self,
        index: u32,
        name: &str,
        dest: IpAddr,
        plen: u8,
        gateway: Option<IpAddr>,
    ) -> Result<bool, NetworkError> {
        let op = || match gateway {
            Some(g) => format!("add route {dest}/{plen} via {g} dev {name}"),
            None => format!("add route {dest}/{plen} dev {name}"),
        };
        let r = match (dest, gateway) {
            (IpAddr::V4(d), g) => {
                let mut req = self
                    .handle
                    .route()
                    .add()
                    .v4()
                    .destination_prefix(d, plen)
                    .output_interface(index);
                match g {
                    Some(IpAddr::V4(g)) => req = req.gateway(g),
                    Some(IpAddr::V6(_)) => {
                        return Err(NetworkError::Netlink {
                            op: op(),
                            reason: "gateway of another address family".into(),
                        })
                    }
                    None => {}
                }
                req.execute().await
            }
            (IpAddr::V6(d), g) => {
                let mut req = self
                    .handle
                    .route()
                    .add()
                    .v6()
                    .destination_prefix(d, plen)
                    .output_interface(index);
                match g {
                    Some(IpAddr::V6(g)) => req = req.gateway(g),
                    Some(IpAddr::V4(_)) => {
                        return Err(NetworkError::Netlink {
                            op: op(),
                            reason: "gateway of another address family".into(),
                        })
                    }
                    None => {}
                }
                req.execute().await
            }
        };
        match r {
            Ok(()) => Ok(true),
            Err(e) if errno(&e) == Some(EEXIST) => Ok(false),
            Err(e) => Err(nl_err(op())(e)),
        }
    }

    /// Indexes of the links enslaved to `master`.
    pub async fn ports_of(&self, master: u32) -> Result<Vec<Link>, NetworkError> {
        Ok(self
            .links()
            .await?
            .into_iter()
            .filter(|l| l.master == Some(master))
            .collect())
    }
}

/// Open the network namespace of a process.
pub fn open_netns(pid: u32) -> Result<File, NetworkError> {
    File::open(format!("/proc/{pid}/ns/net")).map_err(|e| NetworkError::Netns {
        pid,
        reason: format!("cannot open /proc/{pid}/ns/net: {e}"),
    })
}

/// Run `f` with a netlink connection inside the network namespace of `pid`, on a
/// dedicated thread (the namespace change never leaks to the runtime's threads).
pub async fn in_netns<T, F, Fut>(pid: u32, f: F) -> Result<T, NetworkError>
where
    T: Send + 'static,
    F: FnOnce(Netlink) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, NetworkError>> + 'static,
{
    let ns = open_netns(pid)?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name(format!("netns-{pid}"))
        .spawn(move || {
            let run = || -> Result<T, NetworkError> {
                nix::sched::setns(&ns, CloneFlags::CLONE_NEWNET).map_err(|e| {
                    NetworkError::Netns {
                        pid,
                        reason: format!("setns: {e}"),
                    }
                })?;
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| NetworkError::Netns {
                        pid,
                        reason: format!("runtime: {e}"),
                    })?;
                rt.block_on(async move {
                    let nl = Netlink::connect()?;
                    f(nl).await
                })
            };
            let _ = tx.send(run());
        });
    spawned.map_err(|e| NetworkError::Netns {
        pid,
        reason: format!("cannot start a thread: {e}"),
    })?;
    rx.await.map_err(|_| NetworkError::Netns {
        pid,
        reason: "the namespace worker thread died".into(),
    })?
}

/// Write a sysctl of the current thread's network namespace (call inside [`in_netns`]).
pub fn write_net_sysctl(path: &str, value: &str) -> Result<(), NetworkError> {
    let p = format!("/proc/sys/net/{path}");
    std::fs::write(&p, value).map_err(|e| NetworkError::Netlink {
        op: format!("write {p}"),
        reason: e.to_string(),
    })
}
