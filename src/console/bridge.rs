//! The bytes between one console connection and the instance's console.

use std::future::Future;

use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::virt::ConsoleIo;

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The user (the proxy's connection) went away.
    ClientGone,
    /// The instance's side ended (the shell exited, the container stopped).
    InstanceEnded,
    /// The daemon is stopping.
    Stopping,
}

/// Copy both ways until one side ends or `stop` resolves. When the user leaves,
/// a shell of ours is told to end ([`crate::virt::ConsoleKind::goodbye`]);
/// when the instance's side ends, the connection is closed.
pub async fn pump<S>(conn: S, mut io: ConsoleIo, stop: impl Future<Output = ()>) -> End
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut rd, mut wr) = tokio::io::split(conn);
    let mut buf = vec![0u8; 4096];
    tokio::pin!(stop);
    let end = loop {
        tokio::select! {
            out = io.output.next() => match out {
                Some(Ok(b)) => {
                    if wr.write_all(&b).await.is_err() || wr.flush().await.is_err() {
                        break End::ClientGone;
                    }
                }
                Some(Err(_)) | None => break End::InstanceEnded,
            },
            n = rd.read(&mut buf) => match n {
                Ok(0) | Err(_) => break End::ClientGone,
                Ok(n) => {
                    if io.input.write_all(&buf[..n]).await.is_err() || io.input.flush().await.is_err() {
                        break End::InstanceEnded;
                    }
                }
            },
            _ = &mut stop => break End::Stopping,
        }
    };
    match end {
        End::ClientGone | End::Stopping => {
            let bye = io.kind.goodbye();
            if !bye.is_empty() {
                let _ = io.input.write_all(bye).await;
                let _ = io.input.flush().await;
            }
            let _ = io.input.shutdown().await;
        }
        End::InstanceEnded => {}
    }
    let _ = wr.shutdown().await;
    end
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use futures_util::stream;
    use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::virt::{ConsoleKind, DriverError};

    /// A console whose output is `out` (then open until `close` fires) and
    /// whose input lands in the returned reader.
    fn console(
        kind: ConsoleKind,
        out: Vec<&'static [u8]>,
        end_after: bool,
    ) -> (ConsoleIo, tokio::io::DuplexStream) {
        let (input, typed) = duplex(1024);
        let items = stream::iter(
            out.into_iter()
                .map(|b| Ok::<_, DriverError>(Bytes::from(b))),
        );
        let output = if end_after {
            items.boxed()
        } else {
            items.chain(stream::pending()).boxed()
        };
        (
            ConsoleIo {
                kind,
                output,
                input: Box::pin(input),
            },
            typed,
        )
    }

    async fn read_all(mut r: impl AsyncRead + Unpin) -> Vec<u8> {
        let mut v = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), r.read_to_end(&mut v))
            .await
            .expect("the other side closed")
            .unwrap();
        v
    }

    #[tokio::test]
    async fn output_reaches_the_user_and_typing_reaches_the_instance() {
        let (io, typed) = console(ConsoleKind::Shell, vec![b"/ # "], false);
        let (conn, mut user) = duplex(1024);
        let session = tokio::spawn(pump(conn, io, std::future::pending()));
        let mut prompt = [0u8; 4];
        user.read_exact(&mut prompt).await.unwrap();
        assert_eq!(&prompt, b"/ # ");
        user.write_all(b"echo hi\r").await.unwrap();
        drop(user); // the user leaves
        assert_eq!(session.await.unwrap(), End::ClientGone);
        // what was typed, then ^C ^D to end our shell, then EOF
        assert_eq!(read_all(typed).await, b"echo hi\r\x03\x04");
    }

    #[tokio::test]
    async fn leaving_the_instances_own_terminal_sends_it_nothing() {
        let (io, typed) = console(ConsoleKind::OwnTty, vec![], false);
        let (conn, mut user) = duplex(1024);
        let session = tokio::spawn(pump(conn, io, std::future::pending()));
        user.write_all(b"ls\r").await.unwrap();
        drop(user);
        assert_eq!(session.await.unwrap(), End::ClientGone);
        assert_eq!(read_all(typed).await, b"ls\r");
    }

    #[tokio::test]
    async fn the_connection_closes_when_the_instance_side_ends() {
        let (io, _typed) = console(ConsoleKind::Shell, vec![b"bye\r\n"], true);
        let (conn, user) = duplex(1024);
        let session = tokio::spawn(pump(conn, io, std::future::pending()));
        assert_eq!(read_all(user).await, b"bye\r\n");
        assert_eq!(session.await.unwrap(), End::InstanceEnded);
    }

    #[tokio::test]
    async fn a_stopping_daemon_ends_the_session_like_a_user_leaving() {
        let (io, typed) = console(ConsoleKind::Shell, vec![], false);
        let (conn, user) = duplex(1024);
        let end = pump(conn, io, async {}).await;
        assert_eq!(end, End::Stopping);
        assert_eq!(read_all(typed).await, b"\x03\x04");
        assert_eq!(read_all(user).await, b"");
    }
}
