//! The interactive console of a container: its own TTY when its command runs
//! with one and an open stdin, otherwise a shell started in it for the session
//! (`[docker] console_shell`), otherwise its output as it comes.

use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::query_parameters::{AttachContainerOptionsBuilder, ResizeExecOptionsBuilder};
use futures_util::StreamExt;
use tracing::{debug, warn};

use super::driver::{engine_err, DockerDriver};
use crate::virt::console::crlf;
use crate::virt::{ConsoleIo, ConsoleKind, DriverError};

/// The size of a shell's terminal: what Nova's serial console (and Horizon's
/// terminal in its Console tab) shows.
const COLUMNS: i32 = 80;
const ROWS: i32 = 24;

fn bytes_of(o: LogOutput) -> bytes::Bytes {
    match o {
        LogOutput::StdOut { message }
        | LogOutput::StdErr { message }
        | LogOutput::StdIn { message }
        | LogOutput::Console { message } => message,
    }
}

/// Attach to the container's output as it comes (not its past logs), and to
/// its stdin if `stdin`.
async fn attach(
    docker: &bollard::Docker,
    name: &str,
    stdin: bool,
) -> Result<bollard::container::AttachContainerResults, DriverError> {
    let opts = AttachContainerOptionsBuilder::new()
        .stdin(stdin)
        .stdout(true)
        .stderr(true)
        .stream(true)
        .build();
    docker
        .attach_container(name, Some(opts))
        .await
        .map_err(engine_err("attach"))
}

impl DockerDriver {
    pub async fn open_console(&self, uuid: &str) -> Result<ConsoleIo, DriverError> {
        let name = Self::name(uuid)?;
        let c = self.inspect(uuid).await?;
        let running = c.state.as_ref().and_then(|s| s.running).unwrap_or(false);
        let paused = c.state.as_ref().and_then(|s| s.paused).unwrap_or(false);
        if !running || paused {
            return Err(DriverError::InvalidState {
                uuid: uuid.to_string(),
                state: if paused { "paused" } else { "not running" },
                op: "open a console",
            });
        }
        let cfg = c.config.unwrap_or_default();
        let tty = cfg.tty.unwrap_or(false);
        let stdin = cfg.open_stdin.unwrap_or(false);
        // sessions live as long as the user stays: no API timeout
        let docker = self.docker_unbounded();
        if tty && stdin {
            let a = attach(&docker, &name, true).await?;
            debug!(instance = %uuid, "console: the container's own TTY");
            return Ok(ConsoleIo {
                kind: ConsoleKind::OwnTty,
                output: a
                    .output
                    .map(|r| r.map(bytes_of).map_err(engine_err("attach")))
                    .boxed(),
                input: a.input,
            });
        }
        if let Some(shell) = &self.config().console_shell {
            let exec = docker
                .create_exec(
                    &name,
                    CreateExecOptions {
                        attach_stdin: Some(true),
                        attach_stdout: Some(true),
                        attach_stderr: Some(true),
                        tty: Some(true),
                        env: Some(vec!["TERM=xterm"]),
                        cmd: Some(vec![shell.as_str()]),
                        ..Default::default()
                    },
                )
                .await
                .map_err(engine_err("exec"))?;
            let started = docker
                .start_exec(
                    &exec.id,
                    Some(StartExecOptions {
                        detach: false,
                        tty: true,
                        output_capacity: None,
                    }),
                )
                .await
                .map_err(engine_err("exec start"))?;
            let StartExecResults::Attached { output, input } = started else {
                return Err(DriverError::Engine {
                    op: "exec start",
                    reason: "the engine did not attach to the shell".into(),
                });
            };
            let size = ResizeExecOptionsBuilder::new().w(COLUMNS).h(ROWS).build();
            if let Err(e) = docker.resize_exec(&exec.id, size).await {
                // a shell that is already gone (not in the image) ends the
                // session anyway; anything else leaves the default size
                warn!(instance = %uuid, error = %e, "console: could not size the shell's terminal");
            }
            debug!(instance = %uuid, shell = %shell, "console: a shell in the container");
            return Ok(ConsoleIo {
                kind: ConsoleKind::Shell,
                output: output
                    .map(|r| r.map(bytes_of).map_err(engine_err("exec")))
                    .boxed(),
                input,
            });
        }
        let a = attach(&docker, &name, stdin).await?;
        debug!(instance = %uuid, "console: the container's output (no TTY, no shell)");
        // without a TTY the output has bare line feeds; convert if no tty at all
        let mut prev_cr = false;
        Ok(ConsoleIo {
            kind: ConsoleKind::Output,
            output: a
                .output
                .map(move |r| {
                    r.map(|o| {
                        let b = bytes_of(o);
                        if tty {
                            b
                        } else {
                            crlf(&b, &mut prev_cr)
                        }
                    })
                    .map_err(engine_err("attach"))
                })
                .boxed(),
            input: a.input,
        })
    }
}
