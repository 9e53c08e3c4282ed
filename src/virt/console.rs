//! An interactive console of an instance, in driver-neutral types: a byte
//! stream out of the instance and a writer into it. The console server
//! ([`crate::console`]) joins one to a TCP connection of Nova's serial proxy.

use std::pin::Pin;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use tokio::io::AsyncWrite;

use super::DriverError;

/// What the console is attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleKind {
    /// The instance's own terminal: its command runs with a TTY and an open
    /// stdin (user_data `tty: true`, `stdin_open: true`).
    OwnTty,
    /// A shell started in the instance for this session (`[docker]
    /// console_shell`), ended when the session ends.
    Shell,
    /// The instance's output as it comes (and its stdin, when open): no TTY
    /// and no shell allowed.
    Output,
}

impl ConsoleKind {
    pub fn name(self) -> &'static str {
        match self {
            ConsoleKind::OwnTty => "tty",
            ConsoleKind::Shell => "shell",
            ConsoleKind::Output => "output",
        }
    }

    /// What to send into the instance when the user leaves: a shell of ours
    /// gets ^C ^D (interrupt what runs, then end the shell); the instance's own
    /// terminal gets nothing (its command must go on).
    pub fn goodbye(self) -> &'static [u8] {
        match self {
            ConsoleKind::Shell => b"\x03\x04",
            ConsoleKind::OwnTty | ConsoleKind::Output => b"",
        }
    }
}

/// One open console session.
pub struct ConsoleIo {
    pub kind: ConsoleKind,
    /// What the instance writes; ends when the session's process ends.
    pub output: BoxStream<'static, Result<Bytes, DriverError>>,
    /// What the user types.
    pub input: Pin<Box<dyn AsyncWrite + Send>>,
}

impl std::fmt::Debug for ConsoleIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ConsoleIo({})", self.kind.name())
    }
}

/// Output without a terminal has bare line feeds; a terminal emulator needs
/// CR LF to start each line at the left. Converts `\n` not preceded by `\r`
/// (`prev_cr`: whether the previous chunk ended in `\r`).
pub fn crlf(chunk: &[u8], prev_cr: &mut bool) -> Bytes {
    let mut out = Vec::with_capacity(chunk.len() + chunk.len() / 16 + 1);
    for &b in chunk {
        if b == b'\n' && !*prev_cr {
            out.push(b'\r');
        }
        out.push(b);
        *prev_cr = b == b'\r';
    }
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_line_feeds_get_a_carriage_return_once() {
        let mut cr = false;
        assert_eq!(&crlf(b"a\nb\r\nc", &mut cr)[..], b"a\r\nb\r\nc");
        assert!(!cr);
        // a CR at the end of one chunk and the LF at the start of the next
        assert_eq!(&crlf(b"x\r", &mut cr)[..], b"x\r");
        assert!(cr);
        assert_eq!(&crlf(b"\ny\n", &mut cr)[..], b"\ny\r\n");
    }

    #[test]
    fn only_a_shell_of_ours_is_told_to_end() {
        assert_eq!(ConsoleKind::Shell.goodbye(), b"\x03\x04");
        assert!(ConsoleKind::OwnTty.goodbye().is_empty());
        assert!(ConsoleKind::Output.goodbye().is_empty());
    }
}
