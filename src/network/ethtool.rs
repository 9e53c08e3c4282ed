//! Checksum offload off on a veth (`ethtool -K <dev> rx off tx off`), as
//! Neutron does for its own veths on a netdev (userspace) datapath
//! (neutron/agent/linux/interface.py, bug 1832021): OVS's userspace datapath
//! does not complete the checksums a veth leaves to "hardware", so without
//! this ping and UDP work but TCP does not.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::libc;

use super::NetworkError;

const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_SRXCSUM: u32 = 0x15;
const ETHTOOL_STXCSUM: u32 = 0x17;

#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

/// `struct ifreq` with `ifr_data` (the union is 24 bytes on 64-bit Linux).
#[repr(C)]
struct IfreqData {
    name: [u8; libc::IFNAMSIZ],
    data: *mut EthtoolValue,
    _pad: [u8; 16],
}

/// Turn rx and tx checksum offload off on `dev` (in the caller's network
/// namespace).
pub fn checksum_offload_off(dev: &str) -> Result<(), NetworkError> {
    let err = |reason: String| NetworkError::Netlink {
        op: format!("ethtool -K {dev} rx off tx off"),
        reason,
    };
    if dev.is_empty() || dev.len() >= libc::IFNAMSIZ {
        return Err(err("bad interface name".into()));
    }
    // SAFETY: a plain socket call; the fd is owned right away
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(err(std::io::Error::last_os_error().to_string()));
    }
    // SAFETY: fd is a fresh, valid descriptor that nothing else owns
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    for cmd in [ETHTOOL_SRXCSUM, ETHTOOL_STXCSUM] {
        let mut value = EthtoolValue { cmd, data: 0 };
        let mut ifr = IfreqData {
            name: [0; libc::IFNAMSIZ],
            data: &mut value,
            _pad: [0; 16],
        };
        ifr.name[..dev.len()].copy_from_slice(dev.as_bytes());
        // SAFETY: ifr is a valid ifreq whose data points at a live ethtool_value
        let rc = unsafe { libc::ioctl(sock.as_raw_fd(), SIOCETHTOOL as _, &mut ifr) };
        if rc < 0 {
            return Err(err(std::io::Error::last_os_error().to_string()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_and_a_missing_device_is_an_error() {
        assert!(checksum_offload_off("").is_err());
        assert!(checksum_offload_off("a-name-much-too-long").is_err());
        let e = checksum_offload_off("nd-no-such-dev0").unwrap_err();
        assert!(e.to_string().contains("ethtool -K nd-no-such-dev0"), "{e}");
    }
}
