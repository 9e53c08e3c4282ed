//! Clients of other services: keystone, conductor, placement, neutron.

pub mod keystone;
