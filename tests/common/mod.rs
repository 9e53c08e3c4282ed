//! Shared set-up for the integration tests. The services themselves are brought up
//! by `devstack/run-tests.sh` (the README's test command); these helpers only read
//! where they are. Integration tests are `#[ignore]`d so that a bare `cargo test`
//! runs the unit tests alone; the test command runs them with `--include-ignored`.
#![allow(dead_code)]

/// AMQP URL of the test RabbitMQ.
pub fn transport_url() -> String {
    std::env::var("NOVA_DOCKER_TEST_TRANSPORT_URL")
        .unwrap_or_else(|_| "rabbit://guest:guest@127.0.0.1:5672/".into())
}

/// The venv python that has oslo.messaging (and nova, glance) installed.
pub fn python() -> String {
    std::env::var("NOVA_DOCKER_TEST_PYTHON")
        .unwrap_or_else(|_| "/opt/nova-docker-venv/bin/python".into())
}

/// A locally built busybox image whose default command stays running.
pub fn busybox_image() -> String {
    std::env::var("NOVA_DOCKER_TEST_IMAGE")
        .unwrap_or_else(|_| "nova-docker-test/busybox:latest".into())
}

/// Glance API endpoint of the test stack.
pub fn glance_url() -> String {
    std::env::var("NOVA_DOCKER_TEST_GLANCE_URL").unwrap_or_else(|_| "http://127.0.0.1:9292".into())
}

/// Path of a file under tests/.
pub fn test_file(rel: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(rel)
}
