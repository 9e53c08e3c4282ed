//! The state machine, tested without RabbitMQ, Nova, Docker, Glance or
//! Neutron: the manager drives fakes of each seam, and the fake conductor
//! behaves as Nova's does where it matters (it keeps each instance's record,
//! refuses a save whose expected task state does not match it, as
//! `instance.save(expected_task_state=...)` does, and records every call in
//! the shapes of the captured messages in `tests/fixtures/wire/conductor-bound`).

mod fakes;
mod harness;

mod build;
mod console;
mod evacuate;
mod lifecycle;
mod metrics;
mod network;
mod notifications;
mod resize;
mod shelve;
mod start_up;
