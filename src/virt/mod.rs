//! The virt layer: power states and the Docker driver.
pub mod docker;
