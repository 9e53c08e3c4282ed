//! Clients of other services: keystone, conductor, placement, neutron.

pub mod conductor;
pub mod keystone;
pub mod neutron;
pub mod placement;
